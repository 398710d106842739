//! BigQuery's result rows → rows of PostgreSQL's COPY, on the network threads, so that the
//! backend's main thread only hands finished bytes to COPY: in the binary format where every
//! column has one, else in the text format (`crate::types::CopyFormat`). Each value is
//! converted by its column's type (`crate::types`), in the schema's column order.

use super::errors::bad_response;
use super::wire::{Body, QueryResponse, Row, TableSchema};
use crate::day::{SyncDay, TimeColumn};
use crate::day_digest::DayDigest;
use crate::error::{SyncError, SyncResult};
use crate::source::Source;
use crate::types::value::Value;
use crate::types::{Column, CopyFormat};
use serde::de::IgnoredAny;

/// One page, ready for COPY: whole rows only, so a page boundary is a row boundary.
#[derive(Debug, Default)]
pub struct EncodedPage {
    pub bytes: Vec<u8>,
    pub rows: u64,
    /// Rows in which at least one NUL character was removed.
    pub nul_stripped_rows: u64,
    /// The page's rows, hour by hour.
    pub digest: DayDigest,
    /// The hour of the page's rows, run by run: (hour, bytes of its consecutive rows).
    pub hour_runs: Vec<(usize, usize)>,
}

impl EncodedPage {
    /// What the page holds in memory, which the fetch's budget counts until it is written.
    pub fn weight(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Encodes the rows of one day of a source, refusing any row outside the day.
pub struct RowEncoder {
    columns: Vec<Column>,
    /// Per column: NULL is refused (REQUIRED in the source, or NOT NULL in the target).
    refuses_null: Vec<bool>,
    time: TimeColumn,
    time_position: usize,
    day: SyncDay,
    format: CopyFormat,
}

impl RowEncoder {
    /// `not_null`: the columns the target holds NOT NULL.
    pub fn new(source: &Source, not_null: &[String], day: SyncDay, format: CopyFormat) -> Self {
        let time_position = source
            .schema
            .columns
            .iter()
            .position(|column| column.name == source.time.name)
            .unwrap_or_default();
        Self {
            refuses_null: source
                .schema
                .columns
                .iter()
                .map(|column| column.not_null() || not_null.contains(&column.name))
                .collect(),
            columns: source.schema.columns.clone(),
            time: source.time.clone(),
            time_position,
            day,
            format,
        }
    }

    /// Refuses a result whose columns are not the ones asked for.
    pub fn check_schema(&self, schema: &TableSchema) -> SyncResult<()> {
        let names: Vec<&str> = schema
            .fields
            .iter()
            .map(|field| field.name.as_str())
            .collect();
        let expected: Vec<&str> = self
            .columns
            .iter()
            .map(|column| column.name.as_str())
            .collect();
        if names != expected {
            return Err(bad_response(format!(
                "the source result has the columns {names:?}, expected {expected:?}"
            )));
        }
        Ok(())
    }

    /// A response's rows for COPY, each row encoded as soon as it is parsed, so that a
    /// page's peak is its body and its text, never the rows all decoded besides; with what
    /// describes the page.
    pub fn encode_body(&self, body: &Body) -> SyncResult<(QueryResponse<IgnoredAny>, EncodedPage)> {
        // Most values take fewer bytes for COPY than as JSON cells; where a page's rows
        // outgrow its body (hex of bytes, a STRUCT's names), the budget learns it.
        let mut page = EncodedPage {
            bytes: Vec::with_capacity(body.bytes.len()),
            ..EncodedPage::default()
        };
        let head = body.parse_each_row(|row| self.encode_row(&row, &mut page))?;
        Ok((head, page))
    }

    /// Appends rows to a page for COPY.
    pub fn append(&self, rows: Vec<Row<'_>>, page: &mut EncodedPage) -> SyncResult<()> {
        for row in rows {
            self.encode_row(&row, page)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn prepare(&self, rows: Vec<Row<'_>>) -> SyncResult<EncodedPage> {
        let mut page = EncodedPage::default();
        self.append(rows, &mut page)?;
        Ok(page)
    }

    /// Appends one row to the page: a line of COPY text, or a binary tuple (its count of
    /// fields, then each field).
    fn encode_row(&self, row: &Row<'_>, page: &mut EncodedPage) -> SyncResult<()> {
        if row.f.len() != self.columns.len() {
            return Err(bad_response(format!(
                "a source row has {} cells, expected {}",
                row.f.len(),
                self.columns.len()
            )));
        }
        let time = &row.f[self.time_position].v;
        let Some(hour) = self.time.hour_within(time, self.day)? else {
            return Err(SyncError::bad_source_data(
                format!(
                    "BigQuery returned a row outside {} ({} {:?})",
                    self.day,
                    self.time.name,
                    time.as_text().unwrap_or("NULL")
                ),
                "The source query's day filter was not applied; nothing was written. Check token_sync.api_url.",
            ));
        };
        let row_start = page.bytes.len();
        let mut stripped = false;
        if self.format == CopyFormat::Binary {
            // At most 1,600 columns, PostgreSQL's limit for a table.
            let fields = i16::try_from(self.columns.len()).unwrap_or(i16::MAX);
            page.bytes.extend_from_slice(&fields.to_be_bytes());
        }
        for (index, (column, cell)) in self.columns.iter().zip(&row.f).enumerate() {
            if self.refuses_null[index] && cell.v == Value::Null {
                return Err(SyncError::bad_source_data(
                    format!("a source row of {} has NULL in the column \"{}\", which is NOT NULL in the target", self.day, column.name),
                    "Nothing was written for the day. Drop the NOT NULL constraint on the target column if NULL is expected there.",
                ));
            }
            match self.format {
                CopyFormat::Binary => {
                    column.write_binary(&cell.v, &mut page.bytes, &mut stripped)?
                }
                CopyFormat::Text => {
                    if index > 0 {
                        page.bytes.push(b'\t');
                    }
                    column.write_copy(&cell.v, &mut page.bytes, &mut stripped)?
                }
            }
        }
        if self.format == CopyFormat::Text {
            page.bytes.push(b'\n');
        }
        let row_bytes = page.bytes.len() - row_start;
        page.digest.add_row(hour, &page.bytes[row_start..]);
        match page.hour_runs.last_mut() {
            Some((run_hour, bytes)) if *run_hour == hour => *bytes += row_bytes,
            _ => page.hour_runs.push((hour, row_bytes)),
        }
        page.rows += 1;
        if stripped {
            page.nul_stripped_rows += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::value::Cell;

    fn tokens() -> Source {
        Source::described(
            r#"[{"name": "address", "type": "STRING", "mode": "REQUIRED"},
                {"name": "symbol", "type": "STRING"},
                {"name": "block_timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
                {"name": "block_number", "type": "INTEGER", "mode": "REQUIRED"}]"#,
        )
    }

    fn row(cells: [Option<&str>; 4]) -> Row<'_> {
        Row {
            f: cells
                .iter()
                .map(|v| Cell {
                    v: v.map_or(Value::Null, |text| Value::Text(text.into())),
                })
                .collect(),
        }
    }

    #[test]
    fn escapes_strips_nul_and_writes_utc() {
        let day = crate::day::tests::day(2026, 11, 20);
        let encoder = RowEncoder::new(&tokens(), &[], day, CopyFormat::Text);
        let page = encoder
            .prepare(vec![
                row([
                    Some("0xa"),
                    Some("a\tb\nc\\d\re é"),
                    Some("1795132800000001"),
                    Some("42"),
                ]),
                row([
                    Some("0xb"),
                    Some("A\0B"),
                    Some("1795219199999999"),
                    Some("43"),
                ]),
                row([Some("0xc"), None, Some("1795132800000000"), Some("44")]),
            ])
            .expect("encodes");
        assert_eq!(page.rows, 3);
        assert_eq!(page.nul_stripped_rows, 1);
        assert_eq!(
            String::from_utf8(page.bytes).expect("utf-8"),
            "0xa\ta\\tb\\nc\\\\d\\re é\t2026-11-20 00:00:00.000001+00\t42\n\
             0xb\tAB\t2026-11-20 23:59:59.999999+00\t43\n\
             0xc\t\\N\t2026-11-20 00:00:00.000000+00\t44\n"
        );
    }

    #[test]
    fn binary_rows_are_a_field_count_then_each_field_with_its_length() {
        let day = crate::day::tests::day(2026, 11, 20);
        let encoder = RowEncoder::new(&tokens(), &[], day, CopyFormat::Binary);
        let page = encoder
            .prepare(vec![row([
                Some("0x\0a"),
                None,
                Some("946684800000001"),
                Some("-2"),
            ])])
            .expect_err("outside the day");
        assert!(
            page.message.contains("outside 2026-11-20"),
            "{}",
            page.message
        );
        let page = encoder
            .prepare(vec![row([
                Some("0x\0a"),
                None,
                Some("1795132800000001"),
                Some("-2"),
            ])])
            .expect("encodes");
        let mut expected = vec![0, 4];
        expected.extend([0, 0, 0, 3, b'0', b'x', b'a']);
        expected.extend([0xff; 4]);
        expected.extend([0, 0, 0, 8]);
        expected.extend(848_448_000_000_001i64.to_be_bytes());
        expected.extend([0, 0, 0, 8]);
        expected.extend((-2i64).to_be_bytes());
        assert_eq!(page.bytes, expected);
        assert_eq!((page.rows, page.nul_stripped_rows), (1, 1));
    }

    #[test]
    fn refuses_rows_outside_the_day_and_null_in_required_columns() {
        let day = crate::day::tests::day(2026, 11, 20);
        let encoder = RowEncoder::new(&tokens(), &[], day, CopyFormat::Text);
        let next_day = day.end_unix_micros().to_string();
        assert!(encoder
            .prepare(vec![row([Some("0xa"), None, Some(&next_day), Some("1")])])
            .is_err());
        assert!(encoder
            .prepare(vec![row([None, None, Some("1795132800000000"), Some("1")])])
            .is_err());
    }

    fn body(json: &str) -> Body {
        Body {
            bytes: bytes::Bytes::copy_from_slice(json.as_bytes()),
            envelope: Default::default(),
        }
    }

    #[test]
    fn a_body_is_encoded_row_by_row_whatever_the_order_of_its_members() {
        let day = crate::day::tests::day(2026, 11, 20);
        let encoder = RowEncoder::new(&tokens(), &[], day, CopyFormat::Text);
        let (head, page) = encoder
            .encode_body(&body(
                r#"{"rows": [{"f": [{"v": "0xa"}, {"v": null}, {"v": "1795132800000001"}, {"v": "42"}]},
                             {"f": [{"v": "0xb"}, {"v": "B"}, {"v": "1795132800000002"}, {"v": "43"}]}],
                    "pageToken": "next", "totalRows": "7", "jobComplete": true, "extra": [1, {"a": "\\u00e9"}]}"#,
            ))
            .expect("encodes");
        assert_eq!(
            (page.rows, head.page_token.as_deref(), head.total_rows()),
            (2, Some("next"), Some(7))
        );
        assert_eq!(
            String::from_utf8(page.bytes).expect("utf-8"),
            "0xa\t\\N\t2026-11-20 00:00:00.000001+00\t42\n0xb\tB\t2026-11-20 00:00:00.000002+00\t43\n"
        );
        let (head, page) = encoder
            .encode_body(&body(r#"{"totalRows": "0", "rows": null}"#))
            .expect("no rows");
        assert_eq!((page.rows, head.total_rows()), (0, Some(0)));
    }

    #[test]
    fn a_refused_row_ends_the_body_with_its_own_error() {
        let day = crate::day::tests::day(2026, 11, 20);
        let encoder = RowEncoder::new(&tokens(), &[], day, CopyFormat::Text);
        let refused = encoder
            .encode_body(&body(
                r#"{"rows": [{"f": [{"v": null}, {"v": null}, {"v": "1795132800000001"}, {"v": "42"}]}]}"#,
            ))
            .expect_err("NULL in a REQUIRED column");
        assert!(
            refused
                .message
                .contains("has NULL in the column \"address\""),
            "{}",
            refused.message
        );
        let twice = encoder
            .encode_body(&body(r#"{"rows": [], "pageToken": "a", "rows": []}"#))
            .expect_err("rows twice");
        assert!(
            twice.message.contains("duplicate field `rows`"),
            "{}",
            twice.message
        );
        let failed = encoder
            .encode_body(&body(
                r#"{"rows": [], "errors": [{"reason": "backendError", "message": "the page broke"}]}"#,
            ))
            .expect_err("a page reporting errors");
        assert!(
            failed.message.contains("the page broke"),
            "{}",
            failed.message
        );
        let garbled = encoder
            .encode_body(&body(r#"{"rows": [{"f": [{"v": "0xa"}"#))
            .expect_err("cut short");
        assert!(
            garbled
                .message
                .starts_with("BigQuery's answer is not a query response"),
            "{}",
            garbled.message
        );
    }
}
