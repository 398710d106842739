//! `token_verify_day`'s comparison: the day's row count, MIN/MAX of the time column and an
//! order-independent fingerprint, computed by BigQuery over the source and by PostgreSQL
//! over the target with formulas generated here, column by column from the source's
//! schema, so that the two sides cannot drift apart.
//!
//! Each value is spelled in a canonical text both sides produce alike (each type's
//! `Spelling`, in its file under `crate::types`);
//! each row is hashed over its length-prefixed values; the first 32 bits of the MD5 are
//! summed, so the order of rows does not matter and a changed, missing or duplicated row
//! changes the sum.

use crate::bigquery::context::BigQuery;
use crate::bigquery::query;
use crate::bigquery::rest::pages::{self, PendingRow, SingleRow};
use crate::day::SyncDay;
use crate::error::{SyncError, SyncResult};
use crate::load::day_replace::{day_bounds, the_day_in};
use crate::load::target::{Access, NewColumns, TargetTable};
use crate::quote;
use crate::restricted::Restricted;
use crate::source::Source;
use crate::types::{Column, InStruct, Kind, Mode, Spelling};
use pgrx::prelude::*;

/// A column's part of the row's hash input, on both sides.
fn column_parts(column: &Column) -> (String, String) {
    // A STRUCT is jsonb in the target, an ARRAY of scalars a PostgreSQL array.
    let json = matches!(column.kind, Kind::Record(_));
    value_parts(
        column,
        &column.bigquery_name(),
        &column.postgres_name(),
        json,
        0,
    )
}

/// The canonical text of one value of `column` on both sides: a scalar's with its length
/// in front, or `~` for NULL; an ARRAY's elements' in order, joined by `,`; a STRUCT's
/// fields' in the schema's order, joined by `|` inside `{}`. `bigquery` and `postgres` are
/// expressions of the value; `json` says the PostgreSQL one is jsonb (inside a STRUCT);
/// `depth` keeps the aliases of nested arrays apart.
fn value_parts(
    column: &Column,
    bigquery: &str,
    postgres: &str,
    json: bool,
    depth: usize,
) -> (String, String) {
    if column.mode == Mode::Repeated {
        let element = Column {
            mode: Mode::Nullable,
            ..column.clone()
        };
        let (e, o) = (format!("e{depth}"), format!("o{depth}"));
        let (element_bigquery, element_postgres) = value_parts(&element, &e, &e, json, depth + 1);
        let elements = if json {
            format!("jsonb_array_elements(CASE WHEN jsonb_typeof({postgres}) = 'array' THEN {postgres} END)")
        } else {
            format!("unnest({postgres})")
        };
        return (
            format!(
                "ARRAY_TO_STRING(ARRAY(SELECT {element_bigquery} FROM UNNEST({bigquery}) AS {e} \
                 WITH OFFSET AS {o} ORDER BY {o}), ',')"
            ),
            format!(
                "coalesce(array_to_string(ARRAY(SELECT {element_postgres} FROM {elements} \
                 WITH ORDINALITY AS u{depth}({e}, {o}) ORDER BY {o}), ','), '~')"
            ),
        );
    }
    if let Kind::Record(fields) = &column.kind {
        let mut bigquery_fields = Vec::new();
        let mut postgres_fields = Vec::new();
        for field in fields {
            let (field_bigquery, field_postgres) = value_parts(
                field,
                &format!("{bigquery}.{}", field.bigquery_name()),
                &format!("({postgres} -> {})", quote::pg_literal(&field.name)),
                true,
                depth,
            );
            bigquery_fields.push(field_bigquery);
            postgres_fields.push(field_postgres);
        }
        return (
            format!(
                "IF({bigquery} IS NULL, '~', CONCAT('{{', {}, '}}'))",
                bigquery_fields.join(", '|', ")
            ),
            format!(
                "CASE WHEN {postgres} IS NULL OR jsonb_typeof({postgres}) = 'null' THEN '~' \
                 ELSE '{{' || {} || '}}' END",
                postgres_fields.join(" || '|' || ")
            ),
        );
    }
    let Some(spelling) = column.kind.spelling() else {
        unreachable!("a STRUCT is spelled field by field above")
    };
    let (bigquery_text, postgres_text) = spelled(spelling, bigquery, postgres, json);
    (
        format!(
            "IFNULL(CONCAT(CAST(LENGTH({bigquery_text}) AS STRING), ':', {bigquery_text}), '~')"
        ),
        format!("coalesce(length({postgres_text})::text || ':' || {postgres_text}, '~')"),
    )
}

/// The canonical text of a scalar value on both sides, as `spelling` says: `bigquery` and
/// `postgres` are expressions of the value; `json` says the PostgreSQL one is a jsonb member
/// (inside a STRUCT).
pub(crate) fn spelled(
    spelling: &Spelling,
    bigquery: &str,
    postgres: &str,
    json: bool,
) -> (String, String) {
    let bigquery_text = spelling.bigquery.replace("{v}", bigquery);
    if json {
        in_struct(spelling, bigquery_text, postgres)
    } else {
        (bigquery_text, spelling.postgres.replace("{v}", postgres))
    }
}

/// The canonical texts of a scalar field of a STRUCT (`bigquery_text`, and the jsonb member
/// `member` on PostgreSQL's side), as `crate::types::record` wrote it: JSON null stands for
/// NULL, and each other value turns back into the type the column would have on its own,
/// then into that type's text; or as the type spells itself there. Each template is filled
/// in one pass, so a name inside what goes in is never read as a placeholder.
fn in_struct(spelling: &Spelling, bigquery_text: String, member: &str) -> (String, String) {
    match spelling.in_struct {
        InStruct::Value(value) => {
            let value = value.replace("{t}", &format!("({member} #>> '{{}}')"));
            (bigquery_text, spelling.postgres.replace("{v}", &value))
        }
        InStruct::Own { bigquery, postgres } => (
            bigquery.replace("{s}", &bigquery_text),
            postgres.replace("{m}", member),
        ),
    }
}

/// The fingerprint's aggregate in GoogleSQL and in PostgreSQL.
pub struct Fingerprint {
    bigquery: String,
    postgres: String,
}

impl Fingerprint {
    pub fn of(source: &Source) -> Self {
        let (bigquery, postgres): (Vec<_>, Vec<_>) =
            source.schema.columns.iter().map(column_parts).unzip();
        Self {
            bigquery: format!(
                "SUM(CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(CONCAT({}))), 1, 8)) AS INT64))",
                bigquery.join(", '|', ")
            ),
            postgres: format!(
                "sum(('x' || substr(md5({}), 1, 8))::bit(32)::bigint)",
                postgres.join(" || '|' || ")
            ),
        }
    }
}

fn unix_micros_sql(expression: &str) -> String {
    format!("(extract(epoch FROM {expression}) * 1000000)::bigint")
}

/// What one side holds for the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaySummary {
    pub rows: i64,
    /// Microseconds since the Unix epoch; `None` for an empty day.
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub fingerprint: i64,
}

pub struct Comparison {
    pub bigquery: DaySummary,
    pub local: DaySummary,
    pub job_id: String,
}

impl Comparison {
    pub fn matches(&self) -> bool {
        self.bigquery == self.local
    }
}

pub fn compare_day(
    bigquery: &BigQuery,
    source: &Source,
    target_table: &str,
    day: SyncDay,
) -> SyncResult<Comparison> {
    let fingerprint = Fingerprint::of(source);
    // A check changes nothing: a target that does not exist yet holds no rows.
    let target = TargetTable::find(target_table, &source.schema, NewColumns::Refuse)?;
    if let Some(target) = &target {
        target.check_caller_may(Access::Read)?;
    }
    let remote = PendingSummary::start(bigquery, source, &fingerprint, day)?;
    let local = match target {
        Some(target) => {
            let _owner = Restricted::as_owner_of(target.oid)?;
            local_summary(source, &fingerprint, &target, day)?
        }
        None => {
            pgrx::notice!(
                "token_sync: the target table {} does not exist yet; it holds no rows",
                target_table
            );
            DaySummary::default()
        }
    };
    let (remote, job) = remote.wait()?;
    Ok(Comparison {
        bigquery: remote,
        local,
        job_id: job.job_id,
    })
}

/// BigQuery's summary of the day, computed on the network threads while this backend
/// computes its own: the two summaries take as long as the slower one, not their sum.
pub struct PendingSummary(PendingRow);

impl PendingSummary {
    pub fn start(
        bigquery: &BigQuery,
        source: &Source,
        fingerprint: &Fingerprint,
        day: SyncDay,
    ) -> SyncResult<Self> {
        let request = query::day_summary(&bigquery.settings, source, day, &fingerprint.bigquery);
        Ok(Self(pages::start_single_row(bigquery, request)?))
    }

    /// What BigQuery holds for the day, and the job that computed it.
    pub fn wait(self) -> SyncResult<(DaySummary, SingleRow)> {
        let job = self.0.wait()?;
        let summary = DaySummary {
            rows: job.integer(0, "row_count")?.unwrap_or(0),
            min_timestamp: job.integer(1, "min_micros")?,
            max_timestamp: job.integer(2, "max_micros")?,
            fingerprint: job.integer(3, "fingerprint")?.unwrap_or(0),
        };
        Ok((summary, job))
    }
}

/// `local_summary` without parallel workers, for a re-sync that may rewrite the day right
/// after: the leader of a parallel scan keeps about 11 MB more of private memory (measured
/// on a day of a million tokens), which the load would add to; a serial scan took no longer
/// there. Called as the target's owner (`crate::restricted`), whose GUC nest level puts the
/// caller's setting back when it ends, also by an error.
pub fn local_summary_before_load(
    source: &Source,
    fingerprint: &Fingerprint,
    target: &TargetTable,
    day: SyncDay,
) -> SyncResult<DaySummary> {
    Spi::run("SELECT pg_catalog.set_config('max_parallel_workers_per_gather', '0', true)")?;
    local_summary(source, fingerprint, target, day)
}

/// What the target table holds for the day.
pub fn local_summary(
    source: &Source,
    fingerprint: &Fingerprint,
    target: &TargetTable,
    day: SyncDay,
) -> SyncResult<DaySummary> {
    let time = source.time.postgres_name();
    let sql = format!(
        "SELECT count(*), {}, {}, coalesce({}, 0)::bigint FROM {}",
        unix_micros_sql(&format!("min({time})")),
        unix_micros_sql(&format!("max({time})")),
        fingerprint.postgres,
        the_day_in(source, target)
    );
    Spi::connect(|client| {
        let row = client.select(&sql, Some(1), &day_bounds(day))?.first();
        Ok::<_, SyncError>(DaySummary {
            rows: row.get::<i64>(1)?.unwrap_or(0),
            min_timestamp: row.get::<i64>(2)?,
            max_timestamp: row.get::<i64>(3)?,
            fingerprint: row.get::<i64>(4)?.unwrap_or(0),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tests::field;
    use crate::types::FieldSchema;

    #[test]
    fn struct_field_names_are_quoted_in_both_languages() {
        let mut record = field("st", "RECORD", "NULLABLE");
        record.fields = vec![FieldSchema {
            name: "it's `odd` \\".into(),
            ..field("x", "INTEGER", "NULLABLE")
        }];
        let column = Column::from_field(&record).expect("maps");
        let (bigquery, postgres) = column_parts(&column);
        assert!(bigquery.contains(r"`st`.`it's \`odd\` \\`"), "{bigquery}");
        assert!(
            postgres.contains(r#"("st" -> E'it''s `odd` \\')"#),
            "{postgres}"
        );
    }
}
