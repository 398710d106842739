//! BYTES → bytea. BigQuery's REST API sends BYTES as standard base64; PostgreSQL reads
//! bytea as `\x` and hex digits.

use super::{bad_value, InStruct, Spelling};
use crate::error::SyncResult;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Hex on both sides; inside a STRUCT the member holds base64, as TO_JSON spells BYTES.
pub const SPELLING: Spelling = Spelling {
    bigquery: "TO_HEX({v})",
    postgres: "encode({v}, 'hex')",
    in_struct: InStruct::Value("decode({t}, 'base64')"),
};

pub fn decode(text: &str, column: &str) -> SyncResult<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|_| bad_value(column, text, "base64-encoded BYTES value"))
}

/// bytea's hex input text, `\x` followed by two hex digits per byte.
pub fn to_postgres(text: &str, column: &str) -> SyncResult<String> {
    let bytes = decode(text, column)?;
    let mut hex = String::with_capacity(2 + 2 * bytes.len());
    hex.push_str("\\x");
    for byte in bytes {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Ok(hex)
}

/// bytea's binary form: the bytes themselves.
pub fn send(text: &str, column: &str, out: &mut Vec<u8>) -> SyncResult<()> {
    STANDARD
        .decode_vec(text, out)
        .map_err(|_| bad_value(column, text, "base64-encoded BYTES value"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::spelled_both_ways;

    #[test]
    fn fingerprint_spelling() {
        assert_eq!(
            spelled_both_ways(&SPELLING),
            [
                r##"TO_HEX(`c`)"##,
                r##"encode("c", 'hex')"##,
                r##"TO_HEX(`r`.`f`)"##,
                r##"encode(decode((("r" -> 'f') #>> '{}'), 'base64'), 'hex')"##,
            ]
        );
    }

    #[test]
    fn base64_becomes_bytea_hex() {
        assert_eq!(to_postgres("AAH/", "b").ok().as_deref(), Some("\\x0001ff"));
        assert_eq!(to_postgres("", "b").ok().as_deref(), Some("\\x"));
        assert!(to_postgres("not base64!", "b").is_err());
        let mut sent = Vec::new();
        assert!(send("AAH/", "b", &mut sent).is_ok());
        assert_eq!(sent, [0x00, 0x01, 0xff]);
        assert!(send("not base64!", "b", &mut sent).is_err());
    }
}
