//! From BigQuery's `{"f":[{"v":...}]}` rows to typed token rows. Runs on the network
//! threads, so it touches nothing of PostgreSQL.

use super::errors::bad_response;
use super::query::COLUMNS;
use super::wire::{Row, TableSchema};
use crate::error::SyncResult;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::borrow::Cow;
use std::str::FromStr;

/// One row, its strings borrowed from the response body where they needed no unescaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow<'a> {
    pub address: Cow<'a, str>,
    pub symbol: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub decimals: Option<Cow<'a, str>>,
    pub total_supply: Option<Cow<'a, str>>,
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    pub block_timestamp: i64,
    pub block_number: i64,
    pub block_hash: Cow<'a, str>,
}

/// One decoded page.
#[derive(Debug, Default)]
pub struct Page<'a> {
    pub rows: Vec<TokenRow<'a>>,
    /// Rows in which at least one NUL character was removed.
    pub nul_stripped_rows: u64,
}

/// Where each target column sits in the response, checked against the expected schema.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    positions: [usize; COLUMNS.len()],
    width: usize,
}

impl ColumnMap {
    pub fn from_schema(schema: &TableSchema) -> SyncResult<Self> {
        let mut positions = [0; COLUMNS.len()];
        for (slot, (name, expected_type)) in COLUMNS.iter().enumerate() {
            let position = schema
                .fields
                .iter()
                .position(|field| field.name == *name)
                .ok_or_else(|| {
                    bad_response(format!("the source result has no column \"{name}\""))
                })?;
            let actual = schema.fields[position].field_type.as_str();
            if !same_type(expected_type, actual) {
                return Err(bad_response(format!(
                    "the source column \"{name}\" is {actual}, expected {expected_type}"
                )));
            }
            positions[slot] = position;
        }
        if schema.fields.len() != COLUMNS.len() {
            return Err(bad_response(format!(
                "the source result has {} columns, expected {}",
                schema.fields.len(),
                COLUMNS.len()
            )));
        }
        Ok(Self {
            positions,
            width: schema.fields.len(),
        })
    }

    pub fn decode<'a>(&self, rows: Vec<Row<'a>>) -> SyncResult<Page<'a>> {
        let mut page = Page {
            rows: Vec::with_capacity(rows.len()),
            nul_stripped_rows: 0,
        };
        for row in rows {
            if row.f.len() != self.width {
                return Err(bad_response(format!(
                    "a source row has {} cells, expected {}",
                    row.f.len(),
                    self.width
                )));
            }
            let mut cells: Vec<Option<Cow<'a, str>>> =
                row.f.into_iter().map(|cell| cell.v).collect();
            let mut stripped = false;
            let mut take = |slot: usize| {
                let value = cells[self.positions[slot]].take();
                value.map(|text| {
                    if text.contains('\0') {
                        stripped = true;
                        Cow::Owned(text.replace('\0', ""))
                    } else {
                        text
                    }
                })
            };
            let address = take(0);
            let symbol = take(1);
            let name = take(2);
            let decimals = take(3);
            let total_supply = take(4);
            let block_timestamp = take(5);
            let block_number = take(6);
            let block_hash = take(7);
            page.rows.push(TokenRow {
                address: required(address, "address")?,
                symbol,
                name,
                decimals,
                total_supply,
                block_timestamp: parse_timestamp_micros(&required(
                    block_timestamp,
                    "block_timestamp",
                )?)?,
                block_number: parse_integer(&required(block_number, "block_number")?)?,
                block_hash: required(block_hash, "block_hash")?,
            });
            if stripped {
                page.nul_stripped_rows += 1;
            }
        }
        Ok(page)
    }
}

fn same_type(expected: &str, actual: &str) -> bool {
    expected == actual || (expected == "INTEGER" && actual == "INT64")
}

fn required<'a>(value: Option<Cow<'a, str>>, column: &str) -> SyncResult<Cow<'a, str>> {
    value.ok_or_else(|| {
        bad_response(format!(
            "a source row has NULL in the NOT NULL column \"{column}\""
        ))
    })
}

pub fn parse_integer(text: &str) -> SyncResult<i64> {
    text.parse()
        .map_err(|_| bad_response(format!("\"{text}\" is not an INT64")))
}

/// A BigQuery TIMESTAMP as microseconds since the Unix epoch, exactly. BigQuery sends int64
/// microseconds when asked (`useInt64Timestamp`), and otherwise float seconds such as
/// `1.6409952E9`; the latter is parsed as a decimal, never through a binary float.
pub fn parse_timestamp_micros(text: &str) -> SyncResult<i64> {
    if let Ok(micros) = text.parse::<i64>() {
        return Ok(micros);
    }
    let invalid = || bad_response(format!("\"{text}\" is not a BigQuery TIMESTAMP"));
    let seconds = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    }
    .map_err(|_| invalid())?;
    seconds
        .checked_mul(Decimal::from(1_000_000))
        .map(|micros| micros.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven))
        .and_then(|micros| micros.to_i64())
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{Cell, FieldSchema};
    use super::*;

    fn schema() -> TableSchema {
        TableSchema {
            fields: COLUMNS
                .iter()
                .rev()
                .map(|(name, kind)| FieldSchema {
                    name: name.to_string(),
                    field_type: kind.to_string(),
                })
                .collect(),
        }
    }

    fn row(cells: [Option<&str>; 8]) -> Row<'_> {
        // `schema()` lists the columns in reverse.
        Row {
            f: cells
                .iter()
                .rev()
                .map(|v| Cell {
                    v: v.map(Cow::Borrowed),
                })
                .collect(),
        }
    }

    #[test]
    fn timestamps_decode_exactly() {
        assert_eq!(
            parse_timestamp_micros("1640995200000000").ok(),
            Some(1_640_995_200_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("1.6409952E9").ok(),
            Some(1_640_995_200_000_000)
        );
        assert_eq!(
            parse_timestamp_micros("1.640995200123456E9").ok(),
            Some(1_640_995_200_123_456)
        );
        assert_eq!(
            parse_timestamp_micros("1640995200.000001").ok(),
            Some(1_640_995_200_000_001)
        );
        assert_eq!(parse_timestamp_micros("-1.0E0").ok(), Some(-1_000_000));
        assert!(parse_timestamp_micros("yesterday").is_err());
        assert!(parse_timestamp_micros("1e400").is_err());
    }

    #[test]
    fn decodes_by_name_and_strips_nul() {
        let map = ColumnMap::from_schema(&schema()).expect("schema matches");
        let page = map
            .decode(vec![
                row([
                    Some("0xa"),
                    Some("A\0B"),
                    None,
                    Some("18"),
                    None,
                    Some("1"),
                    Some("7"),
                    Some("0xh"),
                ]),
                row([
                    Some("0xb"),
                    Some("tab\t\\"),
                    Some(""),
                    None,
                    None,
                    Some("2"),
                    Some("8"),
                    Some("0xi"),
                ]),
            ])
            .expect("rows decode");
        assert_eq!(page.nul_stripped_rows, 1);
        assert_eq!(page.rows[0].symbol.as_deref(), Some("AB"));
        assert_eq!(page.rows[0].name, None);
        assert_eq!(page.rows[1].name.as_deref(), Some(""));
        assert_eq!(page.rows[1].block_number, 8);
    }

    #[test]
    fn refuses_schema_drift_and_null_keys() {
        let mut renamed = schema();
        renamed.fields[0].name = "hash".into();
        assert!(ColumnMap::from_schema(&renamed).is_err());
        let mut retyped = schema();
        retyped.fields[4].field_type = "INTEGER".into(); // decimals
        assert!(ColumnMap::from_schema(&retyped).is_err());
        let mut extra = schema();
        extra.fields.push(FieldSchema {
            name: "x".into(),
            field_type: "STRING".into(),
        });
        assert!(ColumnMap::from_schema(&extra).is_err());

        let map = ColumnMap::from_schema(&schema()).expect("schema matches");
        let null_address = row([
            None,
            None,
            None,
            None,
            None,
            Some("1"),
            Some("1"),
            Some("0x"),
        ]);
        assert!(map.decode(vec![null_address]).is_err());
    }
}
