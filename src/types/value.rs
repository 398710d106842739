//! A value as BigQuery's REST API sends it in a result row: every scalar as a string (or
//! null), an ARRAY as a list of `{"v": value}`, a STRUCT as `{"f": [{"v": value}, ...]}`.
//! Strings borrow from the response body where they needed no unescaping.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Text(Cow<'a, str>),
    List(Vec<Value<'a>>),
    Record(Vec<Value<'a>>),
}

impl<'a> Value<'a> {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// `{"v": value}`: a cell of a row, or an element of an array.
#[derive(Debug, Deserialize)]
pub struct Cell<'a> {
    #[serde(borrow)]
    pub v: Value<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor(std::marker::PhantomData))
    }
}

struct ValueVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
    type Value = Value<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a BigQuery cell value: a string, null, a list or a record")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(cell) = seq.next_element::<Cell<'a>>()? {
            items.push(cell.v);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "f" {
                let cells: Vec<Cell<'a>> = map.next_value()?;
                fields = Some(cells.into_iter().map(|cell| cell.v).collect());
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        fields
            .map(Value::Record)
            .ok_or_else(|| de::Error::missing_field("f"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_lists_and_records_borrowing_plain_strings() {
        let body = r#"{"f":[{"v":"0xab"},{"v":null},{"v":[{"v":"a"},{"v":"b\"c"}]},{"v":{"f":[{"v":"1"},{"v":[]}]}}]}"#;
        let row: Value<'_> = serde_json::from_str(body).expect("parses");
        let Value::Record(cells) = row else {
            panic!("a row is a record")
        };
        assert!(matches!(&cells[0], Value::Text(Cow::Borrowed("0xab"))));
        assert_eq!(cells[1], Value::Null);
        assert_eq!(
            cells[2],
            Value::List(vec![Value::Text("a".into()), Value::Text("b\"c".into())])
        );
        assert_eq!(
            cells[3],
            Value::Record(vec![Value::Text("1".into()), Value::List(vec![])])
        );
    }
}
