//! BigQuery's types and the PostgreSQL type each becomes, without loss. A source table's
//! schema (`Column`s, read from BigQuery's `tables.get`) is the one description from which
//! the query, the decoding, the COPY rows, the target table and the fingerprint are made.
//!
//! One file per conversion: each turns a value as BigQuery's REST API sends it (text) into
//! PostgreSQL's input text for the mapped type and, where the type has one here, into its
//! binary form (`send`), and says how both sides spell the value in the verification
//! fingerprint (its `SPELLING`, which `crate::verify` assembles).

pub mod array;
pub mod binary;
pub mod boolean;
pub mod float;
pub mod integer;
pub mod interval;
pub mod json;
pub mod numeric;
pub mod record;
pub mod temporal;
pub mod text;
pub mod value;

use crate::error::{SyncError, SyncResult};
use crate::quote;
use pgrx::PgSqlErrorCode;
use serde::Deserialize;
use std::borrow::Cow;
use value::Value;

/// A scalar BigQuery type, or a STRUCT of columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    Bytes,
    Int64,
    Float64,
    Numeric,
    BigNumeric,
    Bool,
    Date,
    Datetime,
    Time,
    Timestamp,
    Json,
    Interval,
    Geography,
    Record(Vec<Column>),
}

/// How the verification fingerprint spells one value of a scalar type, alike on both
/// sides. Each template has one placeholder, filled with an expression of the value.
#[derive(Debug)]
pub struct Spelling {
    /// GoogleSQL text of the source's value `{v}`.
    pub bigquery: &'static str,
    /// PostgreSQL text of the target's value `{v}`, of the mapped type.
    pub postgres: &'static str,
    /// The same inside a STRUCT, whose fields are jsonb members in the target.
    pub in_struct: InStruct,
}

/// How a STRUCT's field of a scalar type is spelled, from the jsonb member `record::to_postgres`
/// wrote.
#[derive(Debug)]
pub enum InStruct {
    /// The member's text `{t}` turned back into the mapped type, then spelled as on its own.
    Value(&'static str),
    /// Spelled anew: BigQuery's side over the field's spelling on its own `{s}`, PostgreSQL's
    /// over the jsonb member `{m}`.
    Own {
        bigquery: &'static str,
        postgres: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nullable,
    Required,
    Repeated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub mode: Mode,
}

/// A field of a BigQuery `TableSchema`, as `tables.get` and `jobs.query` send it.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct FieldSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub mode: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldSchema>,
}

impl Column {
    /// The column a BigQuery field describes; a type with no exact PostgreSQL counterpart
    /// is an error naming the column.
    pub fn from_field(field: &FieldSchema) -> SyncResult<Self> {
        check_column_name(&field.name)?;
        Self::from_field_in(field, "")
    }

    fn from_field_in(field: &FieldSchema, parent: &str) -> SyncResult<Self> {
        let path = format!("{parent}{}", field.name);
        if field.name.is_empty() || field.name.contains('\0') {
            return Err(unusable_name(
                &path,
                "is empty or holds a NUL character, which no PostgreSQL name or jsonb key can",
            ));
        }
        let kind = match field.field_type.to_ascii_uppercase().as_str() {
            "STRING" => Kind::String,
            "BYTES" => Kind::Bytes,
            "INTEGER" | "INT64" => Kind::Int64,
            "FLOAT" | "FLOAT64" => Kind::Float64,
            "NUMERIC" | "DECIMAL" => Kind::Numeric,
            "BIGNUMERIC" | "BIGDECIMAL" => Kind::BigNumeric,
            "BOOLEAN" | "BOOL" => Kind::Bool,
            "DATE" => Kind::Date,
            "DATETIME" => Kind::Datetime,
            "TIME" => Kind::Time,
            "TIMESTAMP" => Kind::Timestamp,
            "JSON" => Kind::Json,
            "INTERVAL" => Kind::Interval,
            "GEOGRAPHY" => Kind::Geography,
            "RECORD" | "STRUCT" => Kind::Record(
                field
                    .fields
                    .iter()
                    .map(|inner| Self::from_field_in(inner, &format!("{path}.")))
                    .collect::<SyncResult<_>>()?,
            ),
            other => {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("the source column {} is {other}, which token_sync cannot mirror exactly", quote::shown_quoted(&path)),
                    "Mirror a view of the table that casts the column to a supported type (see the README's type mapping).",
                ))
            }
        };
        let mode = match field
            .mode
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("NULLABLE") => Mode::Nullable,
            Some("REQUIRED") => Mode::Required,
            Some("REPEATED") => Mode::Repeated,
            Some(other) => {
                return Err(SyncError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!(
                        "the source column {} has the mode {other}, which token_sync does not know",
                        quote::shown_quoted(&path)
                    ),
                    "Report the table's schema to token_sync's maintainers.",
                ))
            }
        };
        Ok(Self {
            name: field.name.clone(),
            kind,
            mode,
        })
    }

    /// The PostgreSQL type that holds the column, as `format_type` spells it.
    pub fn pg_type(&self) -> Cow<'static, str> {
        if matches!(self.kind, Kind::Record(_)) {
            return Cow::Borrowed("jsonb");
        }
        let scalar = match self.kind {
            Kind::String | Kind::Geography => "text",
            Kind::Bytes => "bytea",
            Kind::Int64 => "bigint",
            Kind::Float64 => "double precision",
            Kind::Numeric | Kind::BigNumeric => "numeric",
            Kind::Bool => "boolean",
            Kind::Date => "date",
            Kind::Datetime => "timestamp without time zone",
            Kind::Time => "time without time zone",
            Kind::Timestamp => "timestamp with time zone",
            Kind::Json | Kind::Record(_) => "jsonb",
            Kind::Interval => "interval",
        };
        match self.mode {
            Mode::Repeated => Cow::Owned(format!("{scalar}[]")),
            Mode::Nullable | Mode::Required => Cow::Borrowed(scalar),
        }
    }

    /// NOT NULL in the target: BigQuery's REQUIRED. A REPEATED column is never NULL in
    /// BigQuery either (an absent array is empty), but PostgreSQL's arrays may be, so it
    /// stays nullable there.
    pub fn not_null(&self) -> bool {
        self.mode == Mode::Required
    }

    pub fn postgres_name(&self) -> String {
        quote::pg_ident(&self.name)
    }

    pub fn bigquery_name(&self) -> String {
        quote::bigquery_ident(&self.name)
    }
}

impl Kind {
    /// How the fingerprint spells a value of this scalar type; a STRUCT is spelled field by
    /// field instead (`crate::verify`).
    pub fn spelling(&self) -> Option<&'static Spelling> {
        Some(match self {
            Kind::String | Kind::Geography => &text::SPELLING,
            Kind::Bytes => &binary::SPELLING,
            Kind::Int64 => &integer::SPELLING,
            Kind::Float64 => &float::SPELLING,
            Kind::Numeric | Kind::BigNumeric => &numeric::SPELLING,
            Kind::Bool => &boolean::SPELLING,
            Kind::Date => &temporal::DATE_SPELLING,
            Kind::Datetime => &temporal::DATETIME_SPELLING,
            Kind::Time => &temporal::TIME_SPELLING,
            Kind::Timestamp => &temporal::TIMESTAMP_SPELLING,
            Kind::Json => &json::SPELLING,
            Kind::Interval => &interval::SPELLING,
            Kind::Record(_) => return None,
        })
    }

    /// PostgreSQL's input text for one scalar value, borrowed where it is the value's own.
    pub fn scalar_to_postgres<'v>(
        &self,
        value: &'v str,
        column: &str,
        stripped: &mut bool,
    ) -> SyncResult<Cow<'v, str>> {
        Ok(match self {
            Kind::String | Kind::Geography => text::without_nul(value, stripped),
            Kind::Bytes => Cow::Owned(binary::to_postgres(value, column)?),
            Kind::Int64 => Cow::Borrowed(integer::to_postgres(value, column)?),
            Kind::Float64 => Cow::Owned(float::to_postgres(value, column)?),
            Kind::Numeric | Kind::BigNumeric => numeric::canonical(value, column)?,
            Kind::Bool => Cow::Borrowed(boolean::to_postgres(value, column)?),
            Kind::Date => Cow::Borrowed(temporal::date(value, column)?),
            Kind::Datetime => Cow::Borrowed(temporal::datetime(value, column)?),
            Kind::Time => Cow::Borrowed(temporal::time(value, column)?),
            Kind::Timestamp => Cow::Owned(temporal::timestamp(value, column)?),
            Kind::Json => json::to_postgres(value, stripped),
            Kind::Interval => Cow::Owned(interval::to_postgres(value, column)?),
            Kind::Record(_) => return Err(bad_shape(column, "a STRUCT")),
        })
    }
}

/// The two formats of COPY the rows are written in. Binary skips PostgreSQL's parsing of
/// each line and each value, and PostgreSQL takes it only in the exact type of each column
/// (which the target's are, see `crate::load::target`); text takes every type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Binary,
}

/// The widest average row that goes in COPY's binary format. Binary COPY buffers 1,000 rows
/// before it writes them whatever their size (it sizes its buffer by the bytes of a text
/// line, and a binary row has none), so rows of 100 KB would hold 100 MB in the backend;
/// text COPY writes its buffer every 64 KB.
pub const MAX_BINARY_ROW_BYTES: u64 = 8 * 1024;

impl SourceSchema {
    /// Binary where every column has a binary form here and the table's rows are known to
    /// be narrow (`MAX_BINARY_ROW_BYTES`), else text.
    pub fn copy_format(&self) -> CopyFormat {
        let narrow = self
            .average_row_bytes
            .is_some_and(|bytes| bytes <= MAX_BINARY_ROW_BYTES);
        let binary = narrow
            && self
                .columns
                .iter()
                .all(|column| column.mode != Mode::Repeated && column.kind.has_binary_form());
        if binary {
            CopyFormat::Binary
        } else {
            CopyFormat::Text
        }
    }
}

impl Kind {
    /// A scalar type whose PostgreSQL binary form (its type's send/receive format) is
    /// written here; the others (jsonb, interval, STRUCTs) go as text.
    pub fn has_binary_form(&self) -> bool {
        !matches!(self, Kind::Json | Kind::Interval | Kind::Record(_))
    }

    /// Appends the binary form of one scalar value of a type that has one.
    fn scalar_send(
        &self,
        value: &str,
        column: &str,
        out: &mut Vec<u8>,
        stripped: &mut bool,
    ) -> SyncResult<()> {
        match self {
            Kind::String | Kind::Geography => text::send(value, out, stripped),
            Kind::Bytes => binary::send(value, column, out)?,
            Kind::Int64 => integer::send(value, column, out)?,
            Kind::Float64 => float::send(value, column, out)?,
            Kind::Numeric | Kind::BigNumeric => numeric::send(value, column, out)?,
            Kind::Bool => boolean::send(value, column, out)?,
            Kind::Date => temporal::date_send(value, column, out)?,
            Kind::Datetime => temporal::datetime_send(value, column, out)?,
            Kind::Time => temporal::time_send(value, column, out)?,
            Kind::Timestamp => temporal::timestamp_send(value, column, out)?,
            Kind::Json | Kind::Interval | Kind::Record(_) => {
                return Err(bad_shape(column, "of a type with a binary form"))
            }
        }
        Ok(())
    }
}

impl Column {
    fn null_in_required(&self) -> SyncError {
        SyncError::bad_source_data(
            format!("a source row has NULL in the REQUIRED column \"{}\"", self.name),
            "Nothing was written for the day. The source table broke its own schema; report it to its owner.",
        )
    }

    /// Appends the value as one field of a binary COPY row: its length (-1 for NULL), then
    /// its type's binary form.
    pub fn write_binary(
        &self,
        value: &Value<'_>,
        out: &mut Vec<u8>,
        stripped: &mut bool,
    ) -> SyncResult<()> {
        match (value, self.mode) {
            (Value::Null, Mode::Required) => Err(self.null_in_required()),
            (Value::Null, _) => {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                Ok(())
            }
            (Value::Text(value), Mode::Nullable | Mode::Required) => {
                let start = out.len();
                out.extend_from_slice(&[0; 4]);
                self.kind.scalar_send(value, &self.name, out, stripped)?;
                let length = i32::try_from(out.len() - start - 4)
                    .map_err(|_| bad_value(&self.name, value, "value of at most 1 GB"))?;
                out[start..start + 4].copy_from_slice(&length.to_be_bytes());
                Ok(())
            }
            (_, _) => Err(bad_shape(&self.name, "a scalar")),
        }
    }

    /// Appends the value as one field of a COPY text line.
    pub fn write_copy(
        &self,
        value: &Value<'_>,
        out: &mut Vec<u8>,
        stripped: &mut bool,
    ) -> SyncResult<()> {
        match (value, &self.kind, self.mode) {
            (Value::Null, _, Mode::Required) => return Err(self.null_in_required()),
            (Value::Null, _, _) => text::copy_null(out),
            (_, Kind::Record(_), _) => {
                text::copy_escape(&record::to_postgres(self, value, stripped)?, out)
            }
            (Value::List(items), kind, Mode::Repeated) => {
                text::copy_escape(&array::to_postgres(kind, items, &self.name, stripped)?, out)
            }
            (Value::Text(value), kind, Mode::Nullable | Mode::Required) => {
                text::copy_escape(&kind.scalar_to_postgres(value, &self.name, stripped)?, out)
            }
            (_, _, Mode::Repeated) => return Err(bad_shape(&self.name, "an array")),
            (_, _, _) => return Err(bad_shape(&self.name, "a scalar")),
        }
        Ok(())
    }
}

/// The longest name PostgreSQL keeps whole (NAMEDATALEN - 1 bytes); a longer one is cut.
const MAX_NAME_BYTES: usize = 63;

/// Names PostgreSQL gives every table's system columns, which no user column may take.
const SYSTEM_COLUMNS: [&str; 6] = ["tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"];

/// A source column's name must become the target column's name as it is: PostgreSQL would
/// cut a longer name (two such names could then collide), and refuses a system column's.
fn check_column_name(name: &str) -> SyncResult<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(unusable_name(
            name,
            &format!(
                "is {} bytes long, and PostgreSQL keeps {MAX_NAME_BYTES} bytes of a name",
                name.len()
            ),
        ));
    }
    if SYSTEM_COLUMNS.contains(&name) {
        return Err(unusable_name(
            name,
            "is the name of a PostgreSQL system column",
        ));
    }
    Ok(())
}

fn unusable_name(name: &str, why: &str) -> SyncError {
    SyncError::new(
        PgSqlErrorCode::ERRCODE_INVALID_NAME,
        format!("the source column {} {why}", quote::shown_quoted(name)),
        "Mirror a view of the table that renames the column (SELECT ... AS a_shorter_name), \
         and register the view as the source.",
    )
}

/// The day's rows of one source table as BigQuery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSchema {
    pub columns: Vec<Column>,
    /// The column the table is partitioned on (by hour, day, month or year), if any.
    pub partitioning_column: Option<String>,
    /// A table partitioned by day on that column: each day is one partition, `YYYYMMDD`,
    /// whose metadata moves when its data does.
    pub partitioned_by_day: bool,
    /// Streamed rows wait in BigQuery's streaming buffer: queries see them, but the
    /// partitions' metadata does not count them yet.
    pub streaming_buffer: bool,
    /// The table's logical bytes over its rows, where BigQuery says both (not for a view).
    pub average_row_bytes: Option<u64>,
}

impl SourceSchema {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// A value whose JSON shape does not fit its column's schema.
pub fn bad_shape(column: &str, expected: &str) -> SyncError {
    SyncError::bad_source_data(
        format!("BigQuery sent a value of the column \"{column}\" that is not {expected}"),
        "Nothing was written for the day. Check token_sync.api_url: the source answered outside BigQuery's schema.",
    )
}

/// Where a value went wrong, for the error: the column's dotted path.
pub fn bad_value(column: &str, value: &str, kind: &str) -> SyncError {
    let shown: String = value.chars().take(64).collect();
    SyncError::bad_source_data(
        format!("the source column \"{column}\" holds \"{shown}\", which is not a {kind}"),
        "Nothing was written for the day. If the source is BigQuery itself, report the value to token_sync's maintainers.",
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// How the fingerprint spells a type's value on both sides, as `crate::verify` puts it
    /// together: for a column `c` on its own (GoogleSQL, PostgreSQL), then for a field `f` of
    /// a STRUCT `r`, a jsonb member in the target.
    pub fn spelled_both_ways(spelling: &Spelling) -> [String; 4] {
        let (bigquery, postgres) = crate::verify::spelled(spelling, "`c`", "\"c\"", false);
        let (in_bigquery, in_postgres) =
            crate::verify::spelled(spelling, "`r`.`f`", "(\"r\" -> 'f')", true);
        [bigquery, postgres, in_bigquery, in_postgres]
    }

    pub fn field(name: &str, field_type: &str, mode: &str) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            field_type: field_type.into(),
            mode: Some(mode.into()),
            fields: vec![],
        }
    }

    #[test]
    fn maps_every_type_to_its_postgres_type() {
        let cases = [
            ("STRING", "NULLABLE", "text"),
            ("BYTES", "NULLABLE", "bytea"),
            ("INTEGER", "REQUIRED", "bigint"),
            ("FLOAT", "NULLABLE", "double precision"),
            ("NUMERIC", "NULLABLE", "numeric"),
            ("BIGNUMERIC", "NULLABLE", "numeric"),
            ("BOOLEAN", "NULLABLE", "boolean"),
            ("DATE", "NULLABLE", "date"),
            ("DATETIME", "NULLABLE", "timestamp without time zone"),
            ("TIME", "NULLABLE", "time without time zone"),
            ("TIMESTAMP", "REQUIRED", "timestamp with time zone"),
            ("JSON", "NULLABLE", "jsonb"),
            ("INTERVAL", "NULLABLE", "interval"),
            ("GEOGRAPHY", "NULLABLE", "text"),
            ("STRING", "REPEATED", "text[]"),
            ("NUMERIC", "REPEATED", "numeric[]"),
            ("RECORD", "NULLABLE", "jsonb"),
            ("RECORD", "REPEATED", "jsonb"),
        ];
        for (bigquery, mode, postgres) in cases {
            let column = Column::from_field(&field("c", bigquery, mode)).expect("maps");
            assert_eq!(column.pg_type(), postgres, "{bigquery} {mode}");
        }
    }

    #[test]
    fn binary_copy_for_narrow_rows_of_types_with_a_binary_form() {
        let schema = |fields: &[(&str, &str, &str)], average_row_bytes| SourceSchema {
            columns: fields
                .iter()
                .map(|(name, kind, mode)| {
                    Column::from_field(&field(name, kind, mode)).expect("maps")
                })
                .collect(),
            partitioning_column: None,
            partitioned_by_day: false,
            streaming_buffer: false,
            average_row_bytes,
        };
        let scalars = [("a", "STRING", "REQUIRED"), ("n", "NUMERIC", "NULLABLE")];
        assert_eq!(
            schema(&scalars, Some(200)).copy_format(),
            CopyFormat::Binary
        );
        assert_eq!(
            schema(&scalars, Some(MAX_BINARY_ROW_BYTES)).copy_format(),
            CopyFormat::Binary
        );
        assert_eq!(
            schema(&scalars, Some(MAX_BINARY_ROW_BYTES + 1)).copy_format(),
            CopyFormat::Text
        );
        assert_eq!(schema(&scalars, None).copy_format(), CopyFormat::Text);
        for other in [
            ("j", "JSON", "NULLABLE"),
            ("a", "STRING", "REPEATED"),
            ("r", "RECORD", "NULLABLE"),
        ] {
            assert_eq!(
                schema(&[scalars[0], other], Some(200)).copy_format(),
                CopyFormat::Text,
                "{other:?}"
            );
        }
    }

    #[test]
    fn refuses_a_type_it_cannot_hold_naming_the_column() {
        let mut record = field("outer", "RECORD", "NULLABLE");
        record.fields = vec![field("span", "RANGE", "NULLABLE")];
        let error = Column::from_field(&record).expect_err("RANGE is refused");
        assert!(
            error.message.contains("\"outer.span\" is RANGE"),
            "{}",
            error.message
        );
    }
}
