//! Decoded rows → PostgreSQL's COPY text format, on the network threads, so that the
//! backend's main thread only hands finished bytes to COPY.

use crate::bigquery::budget::Weighed;
use crate::bigquery::decode::{Page, TokenRow};
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use chrono::{DateTime, Datelike, Timelike};
use std::io::Write;

/// One page, ready for COPY: whole lines only, so a page boundary is a row boundary.
#[derive(Debug, Default)]
pub struct EncodedPage {
    pub bytes: Vec<u8>,
    pub rows: u64,
    pub nul_stripped_rows: u64,
}

impl Weighed for EncodedPage {
    fn bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Encodes the page, refusing any row whose block_timestamp falls outside the day.
pub fn encode(page: Page<'_>, day: SyncDay) -> SyncResult<EncodedPage> {
    let (start, end) = (day.start_unix_micros(), day.end_unix_micros());
    let mut bytes = Vec::with_capacity(page.rows.len() * 256);
    for row in &page.rows {
        if row.block_timestamp < start || row.block_timestamp >= end {
            return Err(SyncError::bad_source_data(
                format!("BigQuery returned a row outside {day} (block {})", row.block_number),
                "The source query's day filter was not applied; nothing was written. Check token_sync.api_url.",
            ));
        }
        encode_row(row, &mut bytes);
    }
    Ok(EncodedPage {
        bytes,
        rows: page.rows.len() as u64,
        nul_stripped_rows: page.nul_stripped_rows,
    })
}

fn encode_row(row: &TokenRow<'_>, out: &mut Vec<u8>) {
    text(Some(row.address.as_ref()), out);
    out.push(b'\t');
    text(row.symbol.as_deref(), out);
    out.push(b'\t');
    text(row.name.as_deref(), out);
    out.push(b'\t');
    text(row.decimals.as_deref(), out);
    out.push(b'\t');
    text(row.total_supply.as_deref(), out);
    out.push(b'\t');
    timestamp(row.block_timestamp, out);
    out.push(b'\t');
    let _ = write!(out, "{}", row.block_number);
    out.push(b'\t');
    text(Some(row.block_hash.as_ref()), out);
    out.push(b'\n');
}

fn text(value: Option<&str>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(byte),
        }
    }
}

/// An instant as UTC text with an explicit offset, so the session's TimeZone cannot move it.
fn timestamp(unix_micros: i64, out: &mut Vec<u8>) {
    let moment = DateTime::from_timestamp_micros(unix_micros).unwrap_or_default();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        moment.year(),
        moment.month(),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        moment.timestamp_subsec_micros()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: Option<&str>, micros: i64) -> TokenRow<'_> {
        TokenRow {
            address: "0xa".into(),
            symbol: None,
            name: name.map(Into::into),
            decimals: Some("18".into()),
            total_supply: Some("".into()),
            block_timestamp: micros,
            block_number: 42,
            block_hash: "0xh".into(),
        }
    }

    #[test]
    fn escapes_and_nulls() {
        let mut out = Vec::new();
        encode_row(
            &row(Some("a\tb\nc\\d\re é"), 1_795_132_800_000_001),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "0xa\t\\N\ta\\tb\\nc\\\\d\\re é\t18\t\t2026-11-20 00:00:00.000001+00\t42\t0xh\n"
        );
    }

    #[test]
    fn refuses_rows_outside_the_day() {
        let day = crate::day::tests::day(2026, 11, 20);
        let inside = Page {
            rows: vec![row(None, day.end_unix_micros() - 1)],
            nul_stripped_rows: 0,
        };
        assert_eq!(encode(inside, day).map(|page| page.rows).ok(), Some(1));
        let outside = Page {
            rows: vec![row(None, day.end_unix_micros())],
            nul_stripped_rows: 0,
        };
        assert!(encode(outside, day).is_err());
    }
}
