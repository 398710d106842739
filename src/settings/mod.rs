//! The `token_sync.*` settings, each a row of one table below: its name, type, default,
//! bounds, unit, descriptions and the conversion that checks it (`settings/table.rs` makes
//! the GUCs, `RawSettings` and `Settings` from it; `settings/checks.rs` holds the checks).
//! All are superuser-only (PGC_SUSET): they decide which credentials the server uses and
//! which files it reads, so ordinary users must not set them. `Settings::load` validates
//! them all before any network call is made.

mod checks;
mod table;

use crate::error::{SyncError, SyncResult};
use crate::source::TableRef;
pub use checks::is_loopback;
use checks::{
    api_url, as_is, count, credentials, kilobytes, location, megabytes_or_unbounded, milliseconds,
    optional_api_url, project_id, seconds, target_name,
};
use pgrx::PostgresGucEnum;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use table::settings;
use url::Url;

/// Whether the library was loaded by `shared_preload_libraries`, i.e. before any session
/// could set a `token_sync.*` placeholder.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub fn register() {
    // SAFETY: a plain flag PostgreSQL sets while it loads shared_preload_libraries.
    let preloaded = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloaded, Ordering::Relaxed);
    define_settings();
    // Unknown token_sync.* names become errors instead of silent placeholders.
    // SAFETY: called from _PG_init on the main thread, with a NUL-terminated static name.
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"token_sync".as_ptr());
    }
}

settings! {
    billing_project: String = text(None),
        "Google Cloud project the BigQuery query jobs run in (and are billed to).",
        "Required. The source table may live in another project.",
        project_id;
    source_table: TableRef = text(Some(c"bigquery-public-data.crypto_ethereum.tokens")),
        "BigQuery table to mirror, as project.dataset.table.",
        "",
        |text: String| TableRef::parse(&text);
    target_table: String = text(Some(c"public.raw_tokens")),
        "PostgreSQL table that receives the rows, as [schema.]table.",
        "Created on first use if it does not exist; never a member of the extension.",
        target_name;
    api_url: Url = text(Some(checks::GOOGLE_API_URL)),
        "Base URL of the BigQuery REST API.",
        "Plain http is accepted only for a loopback address (an emulator).",
        api_url;
    credentials: Credentials = text(None, SUPERUSER_ONLY),
        "Path of a service-account key JSON; empty for Application Default Credentials; 'none' for no auth.",
        "'none' is accepted only when api_url points at a loopback address.",
        credentials;
    location: String = text(Some(c"US")),
        "BigQuery location the query jobs run in.",
        "",
        location;
    max_bytes_billed: Option<i64> = int(10 * 1024, 0, i32::MAX, UNIT_MB),
        "Upper bound on bytes billed per query; BigQuery refuses a query that would bill more. 0 means no bound.",
        "",
        megabytes_or_unbounded;
    page_rows: u32 = int(10_000, 1, 1_000_000),
        "Rows asked for per BigQuery result page.",
        "BigQuery also caps a page at about 10 MB.",
        count;
    http_timeout: Duration = int(120, 1, 3600, UNIT_S),
        "Timeout of one HTTP request to BigQuery or the token endpoint.",
        "",
        seconds;
    fetch_concurrency: u32 = int(4, 1, 32),
        "Result pages fetched from BigQuery at once; 1 follows page tokens one by one.",
        "",
        count;
    max_retries: u32 = int(5, 0, 20),
        "Retries of one BigQuery request after a transient error (429, 5xx, rateLimitExceeded, a dropped connection).",
        "",
        count;
    retry_delay: Duration = int(1000, 0, 60_000, UNIT_MS),
        "Wait before the first retry; it doubles (with jitter) for each further one, up to 32 s.",
        "",
        milliseconds;
    max_bytes_in_flight: usize = int(32 * 1024, 256, 4 * 1024 * 1024, UNIT_KB),
        "Memory the fetch pipeline may hold: responses being read and pages not yet written.",
        "Requests ask for as many rows as fit their share of it.",
        kilobytes;
    skip_unchanged: bool = boolean(true),
        "Re-syncing a day that already holds rows first compares it with BigQuery and rewrites it only if it changed.",
        "First BigQuery's metadata, where each day is a partition: unchanged if it was not written since the last load read it and both sides hold that load's rows. Else token_verify_day's comparison: row count, first and last time, and the fingerprint.",
        as_is;
    read_api: ReadApi = choice(ReadApi::Auto),
        "How a day's rows are read: auto, storage (the Storage Read API) or query (a query job's result pages).",
        "auto reads through the Storage Read API and falls back to the query path, with a NOTICE, where the caller may not create read sessions or the table cannot be read that way.",
        as_is;
    storage_api_url: Option<Url> = text(None),
        "Base URL of the BigQuery Storage Read API (gRPC).",
        "Empty: Google's, when token_sync.api_url is Google's; with another api_url (an emulator), auto reads through the query path until this is set. Plain http only to a loopback address.",
        optional_api_url;
    max_backfill_days: i32 = int(366, 1, 100_000),
        "Most days one token_backfill call may cover.",
        "",
        as_is;
    catch_up_window_days: i32 = int(30, 1, 3_660),
        "How many days before the night the nightly catch-up looks back for stale days.",
        "",
        as_is;
    catch_up_max_days: i32 = int(7, 1, 366),
        "Most stale days of one table the catch-up retries in one night.",
        "A long outage is caught up over the following nights.",
        as_is;
    catch_up_tries: i32 = int(5, 1, 30),
        "Failed catch-up tries after which a day is given up.",
        "The tries are 1, 2, 4, 8, ... nights apart.",
        as_is;
}

/// `token_sync.read_api`.
#[derive(PostgresGucEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadApi {
    #[name = c"auto"]
    Auto,
    #[name = c"storage"]
    Storage,
    #[name = c"query"]
    Query,
}

/// Who the server authenticates as when it calls BigQuery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// A service-account key file.
    KeyFile(PathBuf),
    /// GOOGLE_APPLICATION_CREDENTIALS of the server, gcloud's config, then the metadata server.
    ApplicationDefault,
    /// No Authorization header: only for an emulator on a loopback address.
    Anonymous,
}

impl Settings {
    /// Reads and validates every setting. Touches nothing but the GUCs.
    pub fn load() -> SyncResult<Self> {
        require_preloaded()?;
        RawSettings::read().validate()
    }

    /// The nightly catch-up's bounds.
    pub fn catch_up(&self) -> CatchUpPolicy {
        CatchUpPolicy {
            window_days: self.catch_up_window_days,
            max_days: self.catch_up_max_days,
            tries: self.catch_up_tries,
        }
    }
}

impl RawSettings {
    /// Each setting converted, then what holds between them.
    pub fn validate(self) -> SyncResult<Settings> {
        let mut settings = self.convert()?;
        checks::together(&mut settings)?;
        Ok(settings)
    }
}

/// Without the preload, a session may have set a `token_sync.*` placeholder before the
/// library loaded, and PostgreSQL would have kept its value unchecked: refuse to use any.
/// (The ledger's worker never reads the settings, so it needs no preload of its own.)
fn require_preloaded() -> SyncResult<()> {
    if PRELOADED.load(Ordering::Relaxed) {
        return Ok(());
    }
    Err(SyncError::new(
        pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "token_sync is not in shared_preload_libraries",
        "Add it in postgresql.conf, e.g. shared_preload_libraries = 'pg_cron,token_sync' (or ALTER SYSTEM SET shared_preload_libraries = 'pg_cron,token_sync'), and restart the server. Without it an ordinary user could set token_sync.* before the library loads.",
    ))
}

/// The nightly catch-up's bounds (`token_sync.catch_up_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpPolicy {
    /// Stale days are looked for in [night - window_days, night - 1].
    pub window_days: i32,
    /// Most days of one table retried in one night.
    pub max_days: i32,
    /// Failed catch-up tries after which a day is given up.
    pub tries: i32,
}
