//! ARRAY of a scalar → an array of the scalar's PostgreSQL type, written as an array
//! literal (`{"a","b"}`) whose elements are the scalar's own input text. BigQuery has no
//! NULL element and no NULL array (an absent array is empty); an empty array stays `{}`.

use super::value::Value;
use super::{bad_shape, Kind};
use crate::error::SyncResult;

pub fn to_postgres(
    kind: &Kind,
    items: &[Value<'_>],
    column: &str,
    stripped: &mut bool,
) -> SyncResult<String> {
    let mut literal = String::with_capacity(2 + items.len() * 16);
    literal.push('{');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            literal.push(',');
        }
        let text = item
            .as_text()
            .ok_or_else(|| bad_shape(column, "an array element"))?;
        quoted(
            &kind.scalar_to_postgres(text, column, stripped)?,
            &mut literal,
        );
    }
    literal.push('}');
    Ok(literal)
}

/// An element in double quotes, its backslashes and quotes escaped: valid for every type.
fn quoted(element: &str, out: &mut String) {
    out.push('"');
    for character in element.chars() {
        if matches!(character, '"' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &[&'static str]) -> Vec<Value<'static>> {
        items
            .iter()
            .map(|item| Value::Text((*item).into()))
            .collect()
    }

    #[test]
    fn elements_are_quoted_and_typed() {
        let mut stripped = false;
        assert_eq!(
            to_postgres(
                &Kind::String,
                &texts(&["0xa", "say \"hi\"", "back\\slash", ""]),
                "t",
                &mut stripped
            )
            .ok()
            .as_deref(),
            Some(r#"{"0xa","say \"hi\"","back\\slash",""}"#)
        );
        assert_eq!(
            to_postgres(&Kind::Int64, &[], "t", &mut stripped)
                .ok()
                .as_deref(),
            Some("{}")
        );
        assert_eq!(
            to_postgres(&Kind::Bytes, &texts(&["AAE="]), "t", &mut stripped)
                .ok()
                .as_deref(),
            Some(r#"{"\\x0001"}"#)
        );
        assert_eq!(
            to_postgres(&Kind::Float64, &texts(&["nan", "0.5"]), "t", &mut stripped)
                .ok()
                .as_deref(),
            Some(r#"{"NaN","5e-1"}"#)
        );
        assert!(to_postgres(&Kind::Int64, &texts(&["x"]), "t", &mut stripped).is_err());
    }
}
