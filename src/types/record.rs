//! STRUCT (RECORD) and ARRAY of STRUCT → jsonb: an object per STRUCT, its keys the field
//! names, its values as BigQuery's TO_JSON gives them: INT64, NUMERIC and BIGNUMERIC as
//! JSON numbers (jsonb keeps every digit), finite FLOAT64 as numbers and NaN/±Infinity as
//! strings, BOOL as true/false, BYTES as base64, TIMESTAMP as RFC 3339 text in UTC, the
//! other scalars as their text, JSON as itself, an ARRAY as an array, NULL as null.

use super::value::Value;
use super::{bad_shape, binary, boolean, float, integer, json, numeric, temporal, text};
use super::{Column, Kind, Mode};
use crate::error::SyncResult;

/// The column's value (a STRUCT, or an array of them) as JSON text.
pub fn to_postgres(column: &Column, value: &Value<'_>, stripped: &mut bool) -> SyncResult<String> {
    let mut out = String::with_capacity(128);
    write_value(column, value, &mut out, stripped)?;
    Ok(out)
}

fn write_value(
    column: &Column,
    value: &Value<'_>,
    out: &mut String,
    stripped: &mut bool,
) -> SyncResult<()> {
    match (value, column.mode) {
        (Value::Null, _) => out.push_str("null"),
        (Value::List(items), Mode::Repeated) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_element(column, item, out, stripped)?;
            }
            out.push(']');
        }
        (_, Mode::Repeated) => return Err(bad_shape(&column.name, "an array")),
        (element, _) => write_element(column, element, out, stripped)?,
    }
    Ok(())
}

fn write_element(
    column: &Column,
    value: &Value<'_>,
    out: &mut String,
    stripped: &mut bool,
) -> SyncResult<()> {
    match (&column.kind, value) {
        (_, Value::Null) => out.push_str("null"),
        (Kind::Record(fields), Value::Record(cells)) => {
            if fields.len() != cells.len() {
                return Err(bad_shape(&column.name, "a STRUCT of its schema's fields"));
            }
            out.push('{');
            for (index, (field, cell)) in fields.iter().zip(cells).enumerate() {
                if index > 0 {
                    out.push(',');
                }
                json::string(&field.name, out);
                out.push(':');
                write_value(field, cell, out, stripped)?;
            }
            out.push('}');
        }
        (kind, Value::Text(value)) => scalar_json(kind, value, &column.name, out, stripped)?,
        _ => return Err(bad_shape(&column.name, "a value of its type")),
    }
    Ok(())
}

fn scalar_json(
    kind: &Kind,
    value: &str,
    column: &str,
    out: &mut String,
    stripped: &mut bool,
) -> SyncResult<()> {
    match kind {
        Kind::Int64 => out.push_str(integer::to_postgres(value, column)?),
        Kind::Numeric | Kind::BigNumeric => out.push_str(&numeric::canonical(value, column)?),
        Kind::Float64 => float::to_json(value, column, out)?,
        Kind::Bool => out.push_str(boolean::to_postgres(value, column)?),
        Kind::Timestamp => temporal::timestamp_json(value, column, out)?,
        Kind::Json => out.push_str(&json::to_postgres(value, stripped)),
        Kind::Bytes => {
            binary::decode(value, column)?;
            json::string(value, out);
        }
        Kind::String | Kind::Geography => json::string(&text::without_nul(value, stripped), out),
        Kind::Date | Kind::Datetime | Kind::Time | Kind::Interval => {
            kind.scalar_to_postgres(value, column, stripped)?;
            json::string(value, out);
        }
        Kind::Record(_) => return Err(bad_shape(column, "a STRUCT")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::field;
    use super::*;

    #[test]
    fn structs_become_objects_with_typed_values() {
        let mut inner = field("inner", "RECORD", "REPEATED");
        inner.fields = vec![
            field("n", "NUMERIC", "NULLABLE"),
            field("tags", "STRING", "REPEATED"),
        ];
        let mut outer = field("s", "RECORD", "NULLABLE");
        outer.fields = vec![
            field("i", "INTEGER", "NULLABLE"),
            field("f", "FLOAT", "NULLABLE"),
            field("t", "TIMESTAMP", "NULLABLE"),
            field("x", "STRING", "NULLABLE"),
            inner,
        ];
        let column = Column::from_field(&outer).expect("maps");
        let text = |t: &'static str| Value::Text(t.into());
        let value = Value::Record(vec![
            text("-9223372036854775808"),
            text("inf"),
            text("1795132800000001"),
            Value::Null,
            Value::List(vec![Value::Record(vec![
                text("1.500000000"),
                Value::List(vec![text("a\"b")]),
            ])]),
        ]);
        let mut stripped = false;
        assert_eq!(
            to_postgres(&column, &value, &mut stripped).ok().as_deref(),
            Some(
                r#"{"i":-9223372036854775808,"f":"Infinity","t":"2026-11-20T00:00:00.000001Z","x":null,"inner":[{"n":1.5,"tags":["a\"b"]}]}"#
            )
        );
    }
}
