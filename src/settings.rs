//! The `token_sync.*` settings. All are superuser-only (PGC_SUSET): they decide which
//! credentials the server uses and which files it reads, so ordinary users must not set them.
//! `Settings::load` validates them all before any network call is made.

use crate::error::{SyncError, SyncResult};
use crate::source::{is_project_id, TableRef};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use url::{Host, Url};

static BILLING_PROJECT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SOURCE_TABLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"bigquery-public-data.crypto_ethereum.tokens"));
static TARGET_TABLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public.raw_tokens"));
static API_URL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"https://bigquery.googleapis.com"));
static CREDENTIALS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static LOCATION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"US"));
static MAX_BYTES_BILLED_MB: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024);
static PAGE_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static HTTP_TIMEOUT_S: GucSetting<i32> = GucSetting::<i32>::new(120);
static MAX_BACKFILL_DAYS: GucSetting<i32> = GucSetting::<i32>::new(366);
static CATCH_UP_WINDOW_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);
static CATCH_UP_MAX_DAYS: GucSetting<i32> = GucSetting::<i32>::new(7);
static CATCH_UP_TRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
static FETCH_CONCURRENCY: GucSetting<i32> = GucSetting::<i32>::new(4);
static MAX_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);
static RETRY_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
static MAX_KB_IN_FLIGHT: GucSetting<i32> = GucSetting::<i32>::new(32 * 1024);
static SKIP_UNCHANGED: GucSetting<bool> = GucSetting::<bool>::new(true);
static READ_API: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"auto"));
static STORAGE_API_URL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// BigQuery's REST API, where `token_sync.api_url` points by default.
pub const GOOGLE_API_URL: &str = "https://bigquery.googleapis.com";
/// BigQuery's Storage Read API, where `token_sync.storage_api_url` points by default.
pub const GOOGLE_STORAGE_API_URL: &str = "https://bigquerystorage.googleapis.com";

/// Whether the library was loaded by `shared_preload_libraries`, i.e. before any session
/// could set a `token_sync.*` placeholder.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub fn register() {
    // SAFETY: a plain flag PostgreSQL sets while it loads shared_preload_libraries.
    let preloaded = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    PRELOADED.store(preloaded, Ordering::Relaxed);
    define_settings();
    // Unknown token_sync.* names become errors instead of silent placeholders.
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"token_sync".as_ptr());
    }
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pgrx::pg_sys::EmitWarningsOnPlaceholders(c"token_sync".as_ptr());
    }
}

fn define_settings() {
    let flags = GucFlags::default();
    GucRegistry::define_string_guc(
        c"token_sync.billing_project",
        c"Google Cloud project the BigQuery query jobs run in (and are billed to).",
        c"Required. The source table may live in another project.",
        &BILLING_PROJECT,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.source_table",
        c"BigQuery table to mirror, as project.dataset.table.",
        c"",
        &SOURCE_TABLE,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.target_table",
        c"PostgreSQL table that receives the rows, as [schema.]table.",
        c"Created on first use if it does not exist; never a member of the extension.",
        &TARGET_TABLE,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.api_url",
        c"Base URL of the BigQuery REST API.",
        c"Plain http is accepted only for a loopback address (an emulator).",
        &API_URL,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.credentials",
        c"Path of a service-account key JSON; empty for Application Default Credentials; 'none' for no auth.",
        c"'none' is accepted only when api_url points at a loopback address.",
        &CREDENTIALS,
        GucContext::Suset,
        flags | GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"token_sync.location",
        c"BigQuery location the query jobs run in.",
        c"",
        &LOCATION,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.max_bytes_billed",
        c"Upper bound on bytes billed per query; BigQuery refuses a query that would bill more. 0 means no bound.",
        c"",
        &MAX_BYTES_BILLED_MB,
        0,
        i32::MAX,
        GucContext::Suset,
        flags | GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"token_sync.page_rows",
        c"Rows asked for per BigQuery result page.",
        c"BigQuery also caps a page at about 10 MB.",
        &PAGE_ROWS,
        1,
        1_000_000,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.http_timeout",
        c"Timeout of one HTTP request to BigQuery or the token endpoint.",
        c"",
        &HTTP_TIMEOUT_S,
        1,
        3600,
        GucContext::Suset,
        flags | GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"token_sync.fetch_concurrency",
        c"Result pages fetched from BigQuery at once; 1 follows page tokens one by one.",
        c"",
        &FETCH_CONCURRENCY,
        1,
        32,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.max_retries",
        c"Retries of one BigQuery request after a transient error (429, 5xx, rateLimitExceeded, a dropped connection).",
        c"",
        &MAX_RETRIES,
        0,
        20,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.retry_delay",
        c"Wait before the first retry; it doubles (with jitter) for each further one, up to 32 s.",
        c"",
        &RETRY_DELAY_MS,
        0,
        60_000,
        GucContext::Suset,
        flags | GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"token_sync.max_bytes_in_flight",
        c"Memory the fetch pipeline may hold: responses being read and pages not yet written.",
        c"Requests ask for as many rows as fit their share of it.",
        &MAX_KB_IN_FLIGHT,
        256,
        4 * 1024 * 1024,
        GucContext::Suset,
        flags | GucFlags::UNIT_KB,
    );
    GucRegistry::define_bool_guc(
        c"token_sync.skip_unchanged",
        c"Re-syncing a day that already holds rows first compares it with BigQuery and rewrites it only if it changed.",
        c"The comparison is token_verify_day's: row count, first and last block_timestamp, and the fingerprint.",
        &SKIP_UNCHANGED,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.read_api",
        c"How a day's rows are read: auto, storage (the Storage Read API) or query (a query job's result pages).",
        c"auto reads through the Storage Read API and falls back to the query path, with a NOTICE, where the caller may not create read sessions or the table cannot be read that way.",
        &READ_API,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_string_guc(
        c"token_sync.storage_api_url",
        c"Base URL of the BigQuery Storage Read API (gRPC).",
        c"Empty: Google's, when token_sync.api_url is Google's; with another api_url (an emulator), auto reads through the query path until this is set. Plain http only to a loopback address.",
        &STORAGE_API_URL,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.max_backfill_days",
        c"Most days one token_backfill call may cover.",
        c"",
        &MAX_BACKFILL_DAYS,
        1,
        100_000,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.catch_up_window_days",
        c"How many days before the night the nightly catch-up looks back for stale days.",
        c"",
        &CATCH_UP_WINDOW_DAYS,
        1,
        3_660,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.catch_up_max_days",
        c"Most stale days of one table the catch-up retries in one night.",
        c"A long outage is caught up over the following nights.",
        &CATCH_UP_MAX_DAYS,
        1,
        366,
        GucContext::Suset,
        flags,
    );
    GucRegistry::define_int_guc(
        c"token_sync.catch_up_tries",
        c"Failed catch-up tries after which a day is given up.",
        c"The tries are 1, 2, 4, 8, ... nights apart.",
        &CATCH_UP_TRIES,
        1,
        30,
        GucContext::Suset,
        flags,
    );
}

/// `token_sync.read_api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadApi {
    Auto,
    Storage,
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

#[derive(Debug, Clone)]
pub struct Settings {
    pub billing_project: String,
    pub source_table: TableRef,
    pub target_table: String,
    pub api_url: Url,
    pub credentials: Credentials,
    pub location: String,
    pub max_bytes_billed: Option<i64>,
    pub page_rows: u32,
    pub http_timeout: Duration,
    pub max_backfill_days: i32,
    pub catch_up: CatchUpPolicy,
    pub max_retries: u32,
    pub retry_delay: Duration,
    pub fetch_concurrency: u32,
    pub max_bytes_in_flight: usize,
    pub skip_unchanged: bool,
    pub read_api: ReadApi,
    /// Where the Storage Read API is; `None` where none is configured (see `read_api`).
    pub storage_api_url: Option<Url>,
}

impl Settings {
    /// Reads and validates every setting. Touches nothing but the GUCs.
    pub fn load() -> SyncResult<Self> {
        require_preloaded()?;
        let raw = RawSettings {
            billing_project: string_setting(&BILLING_PROJECT),
            source_table: string_setting(&SOURCE_TABLE),
            target_table: string_setting(&TARGET_TABLE),
            api_url: string_setting(&API_URL),
            credentials: string_setting(&CREDENTIALS),
            location: string_setting(&LOCATION),
            max_bytes_billed_mb: MAX_BYTES_BILLED_MB.get(),
            page_rows: PAGE_ROWS.get(),
            http_timeout_s: HTTP_TIMEOUT_S.get(),
            max_backfill_days: MAX_BACKFILL_DAYS.get(),
            catch_up: CatchUpPolicy {
                window_days: CATCH_UP_WINDOW_DAYS.get(),
                max_days: CATCH_UP_MAX_DAYS.get(),
                tries: CATCH_UP_TRIES.get(),
            },
            max_retries: MAX_RETRIES.get(),
            retry_delay_ms: RETRY_DELAY_MS.get(),
            fetch_concurrency: FETCH_CONCURRENCY.get(),
            max_kb_in_flight: MAX_KB_IN_FLIGHT.get(),
            skip_unchanged: SKIP_UNCHANGED.get(),
            read_api: string_setting(&READ_API),
            storage_api_url: string_setting(&STORAGE_API_URL),
        };
        raw.validate()
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

fn string_setting(setting: &GucSetting<Option<CString>>) -> String {
    setting
        .get()
        .map(|value| value.to_string_lossy().trim().to_string())
        .unwrap_or_default()
}

/// The nightly catch-up's bounds (`token_sync.catch_up_*`; PostgreSQL enforces each range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpPolicy {
    /// Stale days are looked for in [night - window_days, night - 1].
    pub window_days: i32,
    /// Most days of one table retried in one night.
    pub max_days: i32,
    /// Failed catch-up tries after which a day is given up.
    pub tries: i32,
}

/// The settings as PostgreSQL holds them, before validation.
#[derive(Debug, Clone)]
pub struct RawSettings {
    pub billing_project: String,
    pub source_table: String,
    pub target_table: String,
    pub api_url: String,
    pub credentials: String,
    pub location: String,
    pub max_bytes_billed_mb: i32,
    pub page_rows: i32,
    pub http_timeout_s: i32,
    pub max_backfill_days: i32,
    pub catch_up: CatchUpPolicy,
    pub max_retries: i32,
    pub retry_delay_ms: i32,
    pub fetch_concurrency: i32,
    pub max_kb_in_flight: i32,
    pub skip_unchanged: bool,
    pub read_api: String,
    pub storage_api_url: String,
}

impl RawSettings {
    pub fn validate(self) -> SyncResult<Settings> {
        if self.billing_project.is_empty() {
            return Err(SyncError::config(
                "token_sync.billing_project is not set",
                "Set it to the Google Cloud project the query jobs run in, e.g. ALTER SYSTEM SET token_sync.billing_project = 'my-project'; SELECT pg_reload_conf();",
            ));
        }
        if !is_project_id(&self.billing_project) {
            return Err(SyncError::config(
                format!(
                    "token_sync.billing_project \"{}\" is not a Google Cloud project id",
                    self.billing_project
                ),
                "Project ids are lower-case letters, digits and hyphens, e.g. my-project-123.",
            ));
        }
        let source_table = TableRef::parse(&self.source_table)?;
        if self.target_table.is_empty() {
            return Err(SyncError::config(
                "token_sync.target_table is empty",
                "Set it to [schema.]table, e.g. public.raw_tokens.",
            ));
        }
        let api_url = parse_api_url(&self.api_url, "token_sync.api_url")?;
        let read_api = match self.read_api.to_ascii_lowercase().as_str() {
            "auto" => ReadApi::Auto,
            "storage" => ReadApi::Storage,
            "query" => ReadApi::Query,
            other => {
                return Err(SyncError::config(
                    format!("token_sync.read_api \"{other}\" is not auto, storage or query"),
                    "Use auto (the default), storage or query.",
                ))
            }
        };
        let storage_api_url = if !self.storage_api_url.is_empty() {
            Some(parse_api_url(
                &self.storage_api_url,
                "token_sync.storage_api_url",
            )?)
        } else if api_url.as_str().trim_end_matches('/') == GOOGLE_API_URL {
            Url::parse(GOOGLE_STORAGE_API_URL).ok()
        } else {
            None
        };
        if read_api == ReadApi::Storage && storage_api_url.is_none() {
            return Err(SyncError::config(
                "token_sync.read_api is storage, but token_sync.storage_api_url is not set for this token_sync.api_url",
                "Set token_sync.storage_api_url to the Storage Read API of the same BigQuery (an emulator's gRPC address, e.g. http://127.0.0.1:9060), or set token_sync.read_api to auto or query.",
            ));
        }
        let credentials = match self.credentials.as_str() {
            "" => Credentials::ApplicationDefault,
            "none" => {
                if !is_loopback(&api_url)
                    || storage_api_url
                        .as_ref()
                        .is_some_and(|url| !is_loopback(url))
                {
                    return Err(SyncError::config(
                        "token_sync.credentials = 'none' is refused for a non-loopback token_sync.api_url",
                        "Unauthenticated calls are only for a local emulator. Set token_sync.credentials to a service-account key path, or empty for Application Default Credentials.",
                    ));
                }
                Credentials::Anonymous
            }
            path => {
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(SyncError::config(
                        "token_sync.credentials must be an absolute path",
                        "Give the full path of the service-account key JSON as the server sees it.",
                    ));
                }
                Credentials::KeyFile(path)
            }
        };
        if self.location.is_empty()
            || !self
                .location
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(SyncError::config(
                format!(
                    "token_sync.location \"{}\" is not a BigQuery location",
                    self.location
                ),
                "Use the source dataset's location, e.g. US or EU or europe-west1.",
            ));
        }
        Ok(Settings {
            billing_project: self.billing_project,
            source_table,
            target_table: self.target_table,
            api_url,
            credentials,
            location: self.location,
            max_bytes_billed: (self.max_bytes_billed_mb > 0)
                .then(|| i64::from(self.max_bytes_billed_mb) * 1024 * 1024),
            page_rows: self.page_rows.clamp(1, 1_000_000) as u32,
            http_timeout: Duration::from_secs(self.http_timeout_s.max(1) as u64),
            max_backfill_days: self.max_backfill_days,
            catch_up: self.catch_up,
            max_retries: self.max_retries.clamp(0, 20) as u32,
            retry_delay: Duration::from_millis(self.retry_delay_ms.max(0) as u64),
            fetch_concurrency: self.fetch_concurrency.clamp(1, 32) as u32,
            max_bytes_in_flight: self.max_kb_in_flight.max(256) as usize * 1024,
            skip_unchanged: self.skip_unchanged,
            read_api,
            storage_api_url,
        })
    }
}

fn parse_api_url(text: &str, setting: &str) -> SyncResult<Url> {
    let url = Url::parse(text).map_err(|error| {
        SyncError::config(
            format!("{setting} \"{text}\" is not a URL: {error}"),
            "Use https://bigquery.googleapis.com, or http://127.0.0.1:PORT for a local emulator.",
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(SyncError::config(
                format!("{setting} \"{text}\" uses plain http to a non-loopback host"),
                "Credentials would travel unencrypted. Use https, or http only to 127.0.0.1 / ::1 / localhost.",
            ))
        }
        other => {
            return Err(SyncError::config(
                format!("{setting} has the unsupported scheme \"{other}\""),
                "Use an https:// URL, or http:// to a loopback address.",
            ))
        }
    }
    if url.host().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(SyncError::config(
            format!("{setting} \"{text}\" must be a base URL with a host and no query"),
            "Use e.g. https://bigquery.googleapis.com.",
        ));
    }
    Ok(url)
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            billing_project: "billing-1".into(),
            source_table: "bigquery-public-data.crypto_ethereum.tokens".into(),
            target_table: "public.raw_tokens".into(),
            api_url: "https://bigquery.googleapis.com".into(),
            credentials: String::new(),
            location: "US".into(),
            max_bytes_billed_mb: 1024,
            page_rows: 100,
            http_timeout_s: 30,
            max_backfill_days: 366,
            catch_up: CatchUpPolicy {
                window_days: 30,
                max_days: 7,
                tries: 5,
            },
            max_retries: 5,
            retry_delay_ms: 1000,
            fetch_concurrency: 4,
            max_kb_in_flight: 32 * 1024,
            skip_unchanged: true,
            read_api: "auto".into(),
            storage_api_url: String::new(),
        }
    }

    #[test]
    fn the_storage_read_api_is_googles_only_beside_googles_rest_api() {
        let settings = raw().validate().expect("valid settings");
        assert_eq!(settings.read_api, ReadApi::Auto);
        assert_eq!(
            settings.storage_api_url.map(String::from).as_deref(),
            Some("https://bigquerystorage.googleapis.com/")
        );
        let mut emulator = raw();
        emulator.api_url = "http://127.0.0.1:9050".into();
        assert_eq!(
            emulator.clone().validate().expect("valid").storage_api_url,
            None
        );
        emulator.read_api = "storage".into();
        assert!(
            emulator.clone().validate().is_err(),
            "storage needs an endpoint"
        );
        emulator.storage_api_url = "http://127.0.0.1:9060".into();
        assert!(emulator.clone().validate().is_ok());
        emulator.storage_api_url = "http://10.0.0.1:9060".into();
        assert!(
            emulator.clone().validate().is_err(),
            "plain http only to loopback"
        );
        emulator.storage_api_url = String::new();
        emulator.read_api = "fast".into();
        assert!(emulator.validate().is_err());
    }

    #[test]
    fn defaults_validate() {
        let settings = raw().validate().expect("valid settings");
        assert_eq!(settings.source_table.dataset, "crypto_ethereum");
        assert_eq!(settings.credentials, Credentials::ApplicationDefault);
        assert_eq!(settings.max_bytes_billed, Some(1024 * 1024 * 1024));
    }

    #[test]
    fn rejects_bad_table_names() {
        for bad in [
            "tokens",
            "a.b",
            "a.b.c.d",
            "p.d.t`; DROP",
            "P.d.t",
            "p..t",
            "p.d.t$20260101",
        ] {
            let mut settings = raw();
            settings.source_table = bad.into();
            assert!(settings.validate().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for (url, ok) in [
            ("http://127.0.0.1:9050", true),
            ("http://[::1]:9050", true),
            ("http://localhost:9050", true),
            ("http://10.0.0.5:9050", false),
            ("ftp://127.0.0.1", false),
            ("https://bigquery.googleapis.com", true),
            ("not a url", false),
        ] {
            let mut settings = raw();
            settings.api_url = url.into();
            assert_eq!(settings.validate().is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn anonymous_only_with_loopback() {
        let mut settings = raw();
        settings.credentials = "none".into();
        assert!(settings.clone().validate().is_err());
        settings.api_url = "http://127.0.0.1:9050".into();
        assert_eq!(
            settings.validate().expect("valid").credentials,
            Credentials::Anonymous
        );
    }

    #[test]
    fn requires_billing_project_and_absolute_key_path() {
        let mut settings = raw();
        settings.billing_project = String::new();
        assert!(settings.validate().is_err());
        let mut settings = raw();
        settings.credentials = "relative/key.json".into();
        assert!(settings.validate().is_err());
    }
}
