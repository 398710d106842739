//! An Arrow record batch of a read session → rows in the shape of BigQuery's REST results
//! (`crate::types::value::Value`: each scalar as the text REST would send), so that one
//! set of conversions (`crate::types`) turns both paths' values into COPY rows. Strings
//! borrow from the batch; other scalars are spelled as REST spells them (INT64 in decimal,
//! TIMESTAMP as Unix microseconds, BYTES in base64, INTERVAL as `Y-M D H:M:S.F`).
//!
//! Each column is read by its Arrow type, checked against the BigQuery type its schema
//! gives: BigQuery's Arrow (NUMERIC as decimal128(38, 9), TIMESTAMP as timestamp[us, UTC])
//! and the emulator's (DuckDB's) differ in places, and both are accepted.

use crate::bigquery::errors::bad_response;
use crate::bigquery::wire::Row;
use crate::error::SyncResult;
use crate::types::value::{Cell, Value};
use crate::types::{Column, Kind, Mode};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, IntervalMonthDayNanoType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt8Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime};
use std::borrow::Cow;

/// Refuses a batch whose columns are not `columns`, by name and in order (the session
/// selected them in this order).
pub fn check_columns(batch: &RecordBatch, columns: &[Column]) -> SyncResult<()> {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect();
    let expected: Vec<&str> = columns.iter().map(|column| column.name.as_str()).collect();
    if names != expected {
        return Err(bad_response(format!(
            "the read session's rows have the columns {names:?}, expected {expected:?}"
        )));
    }
    Ok(())
}

/// The batch's rows, its columns matched to `columns` by position (see `check_columns`).
pub fn rows<'b>(batch: &'b RecordBatch, columns: &[Column]) -> SyncResult<Vec<Row<'b>>> {
    let mut rows: Vec<Row<'b>> = (0..batch.num_rows())
        .map(|_| Row {
            f: Vec::with_capacity(columns.len()),
        })
        .collect();
    for (column, array) in columns.iter().zip(batch.columns()) {
        for (index, row) in rows.iter_mut().enumerate() {
            row.f.push(Cell {
                v: value(array.as_ref(), index, column, column.mode)?,
            });
        }
    }
    Ok(rows)
}

/// Row `index` of `array`, the values of `column` read as of `mode` (an array's elements
/// as single values).
fn value<'b>(
    array: &'b dyn Array,
    index: usize,
    column: &Column,
    mode: Mode,
) -> SyncResult<Value<'b>> {
    if array.is_null(index) {
        return Ok(Value::Null);
    }
    if mode == Mode::Repeated {
        let items = match array.data_type() {
            DataType::List(_) => array.as_list::<i32>().value(index),
            DataType::LargeList(_) => array.as_list::<i64>().value(index),
            DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(index),
            other => return Err(unexpected(column, other)),
        };
        return (0..items.len())
            .map(|item| value(items.as_ref(), item, column, Mode::Nullable).map(owned))
            .collect::<SyncResult<Vec<_>>>()
            .map(Value::List);
    }
    if let Kind::Record(fields) = &column.kind {
        let DataType::Struct(_) = array.data_type() else {
            return Err(unexpected(column, array.data_type()));
        };
        let record = array.as_struct();
        if record.num_columns() != fields.len() {
            return Err(bad_response(format!(
                "the read session's STRUCT \"{}\" has {} fields, expected {}",
                column.name,
                record.num_columns(),
                fields.len()
            )));
        }
        return fields
            .iter()
            .zip(record.columns())
            .map(|(field, values)| value(values.as_ref(), index, field, field.mode).map(owned))
            .collect::<SyncResult<Vec<_>>>()
            .map(Value::Record);
    }
    scalar(array, index, column).map(Value::Text)
}

/// A value that outlives the batch's borrow inside a list or STRUCT (`Value` keeps one
/// lifetime for the whole cell).
fn owned<'b>(value: Value<'_>) -> Value<'b> {
    match value {
        Value::Null => Value::Null,
        Value::Text(text) => Value::Text(Cow::Owned(text.into_owned())),
        Value::List(items) => Value::List(items.into_iter().map(owned).collect()),
        Value::Record(fields) => Value::Record(fields.into_iter().map(owned).collect()),
    }
}

fn scalar<'b>(array: &'b dyn Array, index: usize, column: &Column) -> SyncResult<Cow<'b, str>> {
    let kind = &column.kind;
    let data_type = array.data_type();
    let text = match (kind, data_type) {
        (Kind::String | Kind::Json | Kind::Geography, DataType::Utf8) => {
            Cow::Borrowed(array.as_string::<i32>().value(index))
        }
        (Kind::String | Kind::Json | Kind::Geography, DataType::LargeUtf8) => {
            Cow::Borrowed(array.as_string::<i64>().value(index))
        }
        (Kind::String | Kind::Json | Kind::Geography, DataType::Utf8View) => {
            Cow::Borrowed(array.as_string_view().value(index))
        }
        (Kind::Bytes, DataType::Binary) => base64(array.as_binary::<i32>().value(index)),
        (Kind::Bytes, DataType::LargeBinary) => base64(array.as_binary::<i64>().value(index)),
        (Kind::Bytes, DataType::BinaryView) => base64(array.as_binary_view().value(index)),
        (Kind::Bool, DataType::Boolean) => Cow::Borrowed(if array.as_boolean().value(index) {
            "true"
        } else {
            "false"
        }),
        (Kind::Int64, DataType::Int64) => decimal::<Int64Type>(array, index),
        (Kind::Int64, DataType::Int32) => decimal::<Int32Type>(array, index),
        (Kind::Int64, DataType::Int16) => decimal::<Int16Type>(array, index),
        (Kind::Int64, DataType::Int8) => decimal::<Int8Type>(array, index),
        (Kind::Int64, DataType::UInt32) => decimal::<UInt32Type>(array, index),
        (Kind::Int64, DataType::UInt16) => decimal::<UInt16Type>(array, index),
        (Kind::Int64, DataType::UInt8) => decimal::<UInt8Type>(array, index),
        (Kind::Float64, DataType::Float64) => {
            float(array.as_primitive::<Float64Type>().value(index))
        }
        (Kind::Float64, DataType::Float32) => {
            float(f64::from(array.as_primitive::<Float32Type>().value(index)))
        }
        (Kind::Numeric | Kind::BigNumeric, DataType::Decimal128(_, _)) => Cow::Owned(
            array
                .as_primitive::<Decimal128Type>()
                .value_as_string(index),
        ),
        (Kind::Numeric | Kind::BigNumeric, DataType::Decimal256(_, _)) => Cow::Owned(
            array
                .as_primitive::<Decimal256Type>()
                .value_as_string(index),
        ),
        // REST spells a NUMERIC as its decimal text; some servers send that text as such.
        (Kind::Numeric | Kind::BigNumeric, DataType::Utf8) => {
            Cow::Borrowed(array.as_string::<i32>().value(index))
        }
        (Kind::Date, DataType::Date32) => {
            let days = array.as_primitive::<Date32Type>().value(index);
            date(i64::from(days) * 86_400_000_000, column)?
        }
        (Kind::Date, DataType::Date64) => {
            let millis = array.as_primitive::<Date64Type>().value(index);
            date(millis.saturating_mul(1000), column)?
        }
        (Kind::Timestamp | Kind::Datetime, DataType::Timestamp(unit, _)) => {
            let micros = micros_of(array, index, *unit, column)?;
            if *kind == Kind::Timestamp {
                Cow::Owned(micros.to_string())
            } else {
                datetime(micros, column)?
            }
        }
        (Kind::Time, DataType::Time64(TimeUnit::Microsecond)) => time(
            array.as_primitive::<Time64MicrosecondType>().value(index),
            column,
        )?,
        (Kind::Time, DataType::Time64(TimeUnit::Nanosecond)) => time(
            exact_micros(
                array.as_primitive::<Time64NanosecondType>().value(index),
                1000,
                column,
            )?,
            column,
        )?,
        (Kind::Time, DataType::Time32(TimeUnit::Millisecond)) => time(
            i64::from(array.as_primitive::<Time32MillisecondType>().value(index)) * 1000,
            column,
        )?,
        (Kind::Time, DataType::Time32(TimeUnit::Second)) => time(
            i64::from(array.as_primitive::<Time32SecondType>().value(index)) * 1_000_000,
            column,
        )?,
        (Kind::Interval, DataType::Interval(IntervalUnit::MonthDayNano)) => {
            let value = array
                .as_primitive::<IntervalMonthDayNanoType>()
                .value(index);
            let micros = exact_micros(value.nanoseconds, 1000, column)?;
            Cow::Owned(interval(value.months, value.days, micros))
        }
        // BigQuery's own spelling, where a server sends INTERVAL as text.
        (Kind::Interval, DataType::Utf8) => Cow::Borrowed(array.as_string::<i32>().value(index)),
        (_, other) => return Err(unexpected(column, other)),
    };
    Ok(text)
}

fn unexpected(column: &Column, data_type: &DataType) -> crate::error::SyncError {
    bad_response(format!(
        "the read session sent the column \"{}\" ({}) as Arrow {data_type}",
        column.name,
        column.pg_type()
    ))
}

fn decimal<T: ArrowPrimitiveType>(array: &dyn Array, index: usize) -> Cow<'static, str>
where
    T::Native: ToString,
{
    Cow::Owned(array.as_primitive::<T>().value(index).to_string())
}

fn base64(bytes: &[u8]) -> Cow<'static, str> {
    Cow::Owned(STANDARD.encode(bytes))
}

/// REST's spelling of a double: the shortest digits, NaN and ±Infinity by name.
fn float(value: f64) -> Cow<'static, str> {
    Cow::Owned(crate::types::float::format(value))
}

fn micros_of(array: &dyn Array, index: usize, unit: TimeUnit, column: &Column) -> SyncResult<i64> {
    let overflow = || bad_response(format!("a value of \"{}\" is out of range", column.name));
    match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .value(index)
            .checked_mul(1_000_000)
            .ok_or_else(overflow),
        TimeUnit::Millisecond => array
            .as_primitive::<TimestampMillisecondType>()
            .value(index)
            .checked_mul(1000)
            .ok_or_else(overflow),
        TimeUnit::Microsecond => Ok(array
            .as_primitive::<TimestampMicrosecondType>()
            .value(index)),
        TimeUnit::Nanosecond => exact_micros(
            array.as_primitive::<TimestampNanosecondType>().value(index),
            1000,
            column,
        ),
    }
}

/// `value` in units `per_micro` times finer than a microsecond, refused if it is not a
/// whole number of microseconds (BigQuery has no finer time).
fn exact_micros(value: i64, per_micro: i64, column: &Column) -> SyncResult<i64> {
    if value % per_micro != 0 {
        return Err(bad_response(format!(
            "a value of \"{}\" has a fraction of a microsecond",
            column.name
        )));
    }
    Ok(value / per_micro)
}

fn moment(micros: i64, column: &Column) -> SyncResult<chrono::NaiveDateTime> {
    DateTime::from_timestamp_micros(micros)
        .map(|moment| moment.naive_utc())
        .ok_or_else(|| bad_response(format!("a value of \"{}\" is out of range", column.name)))
}

fn date(micros: i64, column: &Column) -> SyncResult<Cow<'static, str>> {
    let day: NaiveDate = moment(micros, column)?.date();
    Ok(Cow::Owned(day.format("%Y-%m-%d").to_string()))
}

fn datetime(micros: i64, column: &Column) -> SyncResult<Cow<'static, str>> {
    Ok(Cow::Owned(
        moment(micros, column)?
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string(),
    ))
}

fn time(micros: i64, column: &Column) -> SyncResult<Cow<'static, str>> {
    let seconds = u32::try_from(micros.div_euclid(1_000_000)).ok();
    let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
    let time = seconds
        .and_then(|seconds| NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos))
        .ok_or_else(|| {
            bad_response(format!(
                "a value of \"{}\" is not a time of day",
                column.name
            ))
        })?;
    Ok(Cow::Owned(time.format("%H:%M:%S%.6f").to_string()))
}

/// BigQuery's text of an interval: `[-]Y-M [-]D [-]H:M:S.F`, a sign per part.
fn interval(months: i32, days: i32, micros: i64) -> String {
    let sign = |negative: bool| if negative { "-" } else { "" };
    let (whole_months, all_micros) = (months.unsigned_abs(), micros.unsigned_abs());
    let seconds = all_micros / 1_000_000;
    format!(
        "{}{}-{} {}{} {}{}:{}:{}.{:06}",
        sign(months < 0),
        whole_months / 12,
        whole_months % 12,
        sign(days < 0),
        days.unsigned_abs(),
        sign(micros < 0),
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        all_micros % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::field;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::types::IntervalMonthDayNano;
    use arrow_array::{
        ArrayRef, Decimal128Array, Float64Array, Int64Array, IntervalMonthDayNanoArray,
        StringArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    fn columns(fields: &[(&str, &str, &str)]) -> Vec<Column> {
        fields
            .iter()
            .map(|(name, kind, mode)| Column::from_field(&field(name, kind, mode)).expect("maps"))
            .collect()
    }

    fn texts(row: &Row<'_>) -> Vec<Option<String>> {
        row.f
            .iter()
            .map(|cell| match &cell.v {
                Value::Text(text) => Some(text.to_string()),
                Value::List(items) => Some(format!("{items:?}")),
                _ => None,
            })
            .collect()
    }

    /// A batch of two rows, one column per kind of Arrow value, and its columns.
    fn sample() -> (RecordBatch, Vec<Column>) {
        let mut topics = ListBuilder::new(StringBuilder::new());
        topics.values().append_value("0xa");
        topics.append(true);
        topics.append(true);
        let batch = RecordBatch::try_from_iter(vec![
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_795_132_800_000_001), None])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                "dt",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    1_795_132_800_000_001,
                    0,
                ])),
            ),
            ("i", Arc::new(Int64Array::from(vec![i64::MIN, 7]))),
            ("f", Arc::new(Float64Array::from(vec![f64::NAN, 0.1]))),
            (
                "n",
                Arc::new(
                    Decimal128Array::from(vec![1_500_000_000, -1])
                        .with_precision_and_scale(38, 9)
                        .expect("valid"),
                ),
            ),
            ("s", Arc::new(StringArray::from(vec!["é\u{0}", ""]))),
            (
                "iv",
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    IntervalMonthDayNano::new(14, 3, 14_706_500_000_000),
                    IntervalMonthDayNano::new(-14, 0, -1_000),
                ])),
            ),
            ("topics", Arc::new(topics.finish())),
        ])
        .expect("batch");
        let columns = columns(&[
            ("ts", "TIMESTAMP", "NULLABLE"),
            ("dt", "DATETIME", "NULLABLE"),
            ("i", "INTEGER", "NULLABLE"),
            ("f", "FLOAT", "NULLABLE"),
            ("n", "NUMERIC", "NULLABLE"),
            ("s", "STRING", "NULLABLE"),
            ("iv", "INTERVAL", "NULLABLE"),
            ("topics", "STRING", "REPEATED"),
        ]);
        (batch, columns)
    }

    #[test]
    fn arrow_values_become_rest_values() {
        let (batch, columns) = sample();
        let rows = rows(&batch, &columns).expect("converts");
        let text = |s: &str| Some(s.to_string());
        assert_eq!(
            texts(&rows[0]),
            vec![
                text("1795132800000001"),
                text("2026-11-20T00:00:00.000001"),
                text("-9223372036854775808"),
                text("NaN"),
                text("1.500000000"),
                text("é\u{0}"),
                text("1-2 3 4:5:6.500000"),
                text(r#"[Text("0xa")]"#),
            ]
        );
        assert_eq!(
            texts(&rows[1]),
            vec![
                None,
                text("1970-01-01T00:00:00.000000"),
                text("7"),
                text("1e-1"),
                text("-0.000000001"),
                text(""),
                text("-1-2 0 -0:0:0.000001"),
                text("[]"),
            ]
        );
    }

    #[test]
    fn columns_are_checked_by_name() {
        let (batch, columns) = sample();
        assert!(check_columns(&batch, &columns).is_ok());
        let wrong = columns_named_otherwise(&columns);
        assert!(
            check_columns(&batch, &wrong).is_err(),
            "columns are checked by name"
        );
    }

    fn columns_named_otherwise(columns: &[Column]) -> Vec<Column> {
        let mut renamed = columns.to_vec();
        renamed[0].name = "other".into();
        renamed
    }
}
