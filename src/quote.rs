//! The only ways a name or a text value reaches the SQL that token_sync builds: quoted by
//! the rules of the language it lands in, PostgreSQL's or GoogleSQL's. Everything BigQuery
//! says about a table (column and field names) is untrusted input, and so is a caller's
//! setting; anything else reaches SQL as a parameter.

use std::fmt::Write;

/// A PostgreSQL identifier, always quoted (so that its case is kept), inner double quotes
/// doubled: PostgreSQL's `quote_identifier` rule. The name must hold no NUL, which no
/// PostgreSQL name can (`types::Column` refuses such names).
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal that reads the same whatever `standard_conforming_strings`
/// is: quotes doubled, and where it holds a backslash, an `E''` literal with backslashes
/// doubled (PostgreSQL's `quote_literal` rule).
pub fn pg_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if quoted.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A GoogleSQL quoted identifier: backticks, with GoogleSQL's escape sequences for a
/// backtick, a backslash and every control character.
pub fn bigquery_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

/// A name as an error message shows it: as it is where it is a plain identifier (letters,
/// digits, underscores), else in double quotes with quotes and control characters escaped,
/// so that a hostile name cannot make a message lie.
pub fn shown(name: &str) -> String {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        shown_quoted(name)
    }
}

/// A name in double quotes, double quotes, backslashes and control characters escaped.
pub fn shown_quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '\'' => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_identifiers_double_their_quotes() {
        assert_eq!(pg_ident("address"), "\"address\"");
        assert_eq!(pg_ident("Owner's \"x\""), "\"Owner's \"\"x\"\"\"");
        assert_eq!(pg_ident("a\";DROP TABLE t;--"), "\"a\"\";DROP TABLE t;--\"");
    }

    #[test]
    fn postgres_literals_double_quotes_and_escape_backslashes() {
        assert_eq!(pg_literal("plain"), "'plain'");
        assert_eq!(pg_literal("owner's';--"), "'owner''s'';--'");
        assert_eq!(pg_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn googlesql_identifiers_escape_backticks_backslashes_and_controls() {
        assert_eq!(bigquery_ident("block_timestamp"), "`block_timestamp`");
        assert_eq!(bigquery_ident("a`b\\c"), "`a\\`b\\\\c`");
        assert_eq!(bigquery_ident("x\ny\u{1}"), "`x\\ny\\u0001`");
        assert_eq!(bigquery_ident("it's \"ok\""), "`it's \"ok\"`");
    }

    #[test]
    fn shown_names_cannot_break_out_of_their_quotes() {
        assert_eq!(shown("plain_1"), "plain_1");
        assert_eq!(shown("owner's"), "\"owner's\"");
        assert_eq!(shown("a\"b\nc"), "\"a\\\"b\\nc\"");
    }
}
