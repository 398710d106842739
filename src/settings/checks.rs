//! What each setting must hold, and what must hold between them: the conversions the
//! settings table names, from PostgreSQL's raw value to the typed field of `Settings`.

use super::{Credentials, ReadApi, Settings};
use crate::error::{SyncError, SyncResult};
use crate::source::is_project_id;
use std::ffi::CStr;
use std::path::PathBuf;
use std::time::Duration;
use url::{Host, Url};

/// BigQuery's REST API, where `token_sync.api_url` points by default.
pub const GOOGLE_API_URL: &CStr = c"https://bigquery.googleapis.com";
/// BigQuery's Storage Read API, where `token_sync.storage_api_url` points by default.
const GOOGLE_STORAGE_API_URL: &str = "https://bigquerystorage.googleapis.com";

pub fn as_is<T>(value: T) -> SyncResult<T> {
    Ok(value)
}

/// A count whose bounds (checked before) are not negative.
pub fn count(value: i32) -> SyncResult<u32> {
    Ok(value.unsigned_abs())
}

pub fn seconds(value: i32) -> SyncResult<Duration> {
    Ok(Duration::from_secs(value.unsigned_abs().into()))
}

pub fn milliseconds(value: i32) -> SyncResult<Duration> {
    Ok(Duration::from_millis(value.unsigned_abs().into()))
}

pub fn kilobytes(value: i32) -> SyncResult<usize> {
    Ok(value.unsigned_abs() as usize * 1024)
}

/// `0` means no bound.
pub fn megabytes_or_unbounded(value: i32) -> SyncResult<Option<i64>> {
    Ok((value > 0).then(|| i64::from(value) * 1024 * 1024))
}

pub fn project_id(text: String) -> SyncResult<String> {
    if text.is_empty() {
        return Err(SyncError::config(
            "token_sync.billing_project is not set",
            "Set it to the Google Cloud project the query jobs run in, e.g. ALTER SYSTEM SET token_sync.billing_project = 'my-project'; SELECT pg_reload_conf();",
        ));
    }
    if !is_project_id(&text) {
        return Err(SyncError::config(
            format!("token_sync.billing_project \"{text}\" is not a Google Cloud project id"),
            "Project ids are lower-case letters, digits and hyphens, e.g. my-project-123.",
        ));
    }
    Ok(text)
}

pub fn target_name(text: String) -> SyncResult<String> {
    if text.is_empty() {
        return Err(SyncError::config(
            "token_sync.target_table is empty",
            "Set it to [schema.]table, e.g. public.raw_tokens.",
        ));
    }
    Ok(text)
}

pub fn api_url(text: String) -> SyncResult<Url> {
    parse_api_url(&text, "token_sync.api_url")
}

/// Empty: none given (`together` picks Google's beside Google's REST API).
pub fn optional_api_url(text: String) -> SyncResult<Option<Url>> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_api_url(&text, "token_sync.storage_api_url").map(Some)
}

/// Whether 'none' may be used is decided with the URLs, in `together`.
pub fn credentials(text: String) -> SyncResult<Credentials> {
    match text.as_str() {
        "" => Ok(Credentials::ApplicationDefault),
        "none" => Ok(Credentials::Anonymous),
        path => {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(SyncError::config(
                    "token_sync.credentials must be an absolute path",
                    "Give the full path of the service-account key JSON as the server sees it.",
                ));
            }
            Ok(Credentials::KeyFile(path))
        }
    }
}

pub fn location(text: String) -> SyncResult<String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(SyncError::config(
            format!("token_sync.location \"{text}\" is not a BigQuery location"),
            "Use the source dataset's location, e.g. US or EU or europe-west1.",
        ));
    }
    Ok(text)
}

/// What must hold between settings, once each is valid on its own.
pub fn together(settings: &mut Settings) -> SyncResult<()> {
    if settings.storage_api_url.is_none()
        && settings.api_url.as_str().trim_end_matches('/').as_bytes() == GOOGLE_API_URL.to_bytes()
    {
        settings.storage_api_url = Url::parse(GOOGLE_STORAGE_API_URL).ok();
    }
    if settings.read_api == ReadApi::Storage && settings.storage_api_url.is_none() {
        return Err(SyncError::config(
            "token_sync.read_api is storage, but token_sync.storage_api_url is not set for this token_sync.api_url",
            "Set token_sync.storage_api_url to the Storage Read API of the same BigQuery (an emulator's gRPC address, e.g. http://127.0.0.1:9060), or set token_sync.read_api to auto or query.",
        ));
    }
    let remote_storage = settings
        .storage_api_url
        .as_ref()
        .is_some_and(|url| !is_loopback(url));
    if settings.credentials == Credentials::Anonymous
        && (!is_loopback(&settings.api_url) || remote_storage)
    {
        return Err(SyncError::config(
            "token_sync.credentials = 'none' is refused for a non-loopback token_sync.api_url",
            "Unauthenticated calls are only for a local emulator. Set token_sync.credentials to a service-account key path, or empty for Application Default Credentials.",
        ));
    }
    Ok(())
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
    use crate::settings::RawSettings;

    /// The defaults with the one setting that has none.
    fn raw() -> RawSettings {
        let mut raw = RawSettings::defaults();
        raw.billing_project = "billing-1".into();
        raw
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
        emulator.read_api = ReadApi::Storage;
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
    }

    #[test]
    fn defaults_validate() {
        let settings = raw().validate().expect("valid settings");
        assert_eq!(settings.source_table.dataset, "crypto_ethereum");
        assert_eq!(settings.credentials, Credentials::ApplicationDefault);
        assert_eq!(settings.max_bytes_billed, Some(10 * 1024 * 1024 * 1024));
        assert_eq!(settings.http_timeout, Duration::from_secs(120));
        assert_eq!(settings.retry_delay, Duration::from_secs(1));
        assert_eq!(settings.max_bytes_in_flight, 32 * 1024 * 1024);
        assert_eq!(settings.read_api, ReadApi::Auto);
    }

    #[test]
    fn integers_are_held_to_the_bounds_postgresql_enforces() {
        let mut settings = raw();
        settings.page_rows = 0;
        let error = settings.validate().expect_err("0 rows a page");
        assert!(
            error.message.contains("token_sync.page_rows = 0"),
            "{}",
            error.message
        );
        let mut settings = raw();
        settings.max_bytes_billed = 0;
        assert_eq!(
            settings.validate().expect("0 is no bound").max_bytes_billed,
            None
        );
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
