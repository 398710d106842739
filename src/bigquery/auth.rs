//! Who we are to BigQuery: a service-account key, Application Default Credentials, or
//! nobody (an emulator on loopback). Providers are kept for the life of the backend so that
//! gcp_auth's token cache spares a token request per call. Key contents and tokens never
//! appear in an error.

use crate::error::{SyncError, SyncResult};
use crate::settings::Credentials;
use gcp_auth::{CustomServiceAccount, TokenProvider};
use pgrx::PgSqlErrorCode;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

#[derive(Clone)]
pub enum Authorizer {
    Anonymous,
    Provider(Arc<dyn TokenProvider>),
}

/// The provider last built in this backend, with what it was built from.
struct CachedProvider {
    credentials: Credentials,
    key_modified: Option<SystemTime>,
    provider: Arc<dyn TokenProvider>,
}

static PROVIDER: Mutex<Option<CachedProvider>> = Mutex::new(None);

impl Authorizer {
    /// Builds (or reuses) the authorizer for these credentials. Reading and checking a key
    /// file happens here, before any network call.
    pub async fn for_credentials(credentials: &Credentials) -> SyncResult<Self> {
        let key_modified = match credentials {
            Credentials::Anonymous => return Ok(Self::Anonymous),
            Credentials::KeyFile(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
            Credentials::ApplicationDefault => None,
        };
        if let Some(cached) = PROVIDER.lock().ok().and_then(|guard| {
            guard
                .as_ref()
                .filter(|c| &c.credentials == credentials && c.key_modified == key_modified)
                .map(|c| c.provider.clone())
        }) {
            return Ok(Self::Provider(cached));
        }
        let provider: Arc<dyn TokenProvider> = match credentials {
            Credentials::KeyFile(path) => Arc::new(service_account_from_file(path)?),
            Credentials::ApplicationDefault => gcp_auth::provider().await.map_err(|error| {
                SyncError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                    "no Google credentials found for the database server",
                    "Set token_sync.credentials to the path of a service-account key JSON, or give the server GOOGLE_APPLICATION_CREDENTIALS, or run it where the GCE/GKE metadata server answers.",
                )
                .with_detail(error.to_string())
            })?,
            Credentials::Anonymous => unreachable!("handled above"),
        };
        if let Ok(mut guard) = PROVIDER.lock() {
            *guard = Some(CachedProvider {
                credentials: credentials.clone(),
                key_modified,
                provider: provider.clone(),
            });
        }
        Ok(Self::Provider(provider))
    }

    /// The bearer token to send, if any.
    pub async fn bearer(&self, timeout: Duration) -> SyncResult<Option<String>> {
        let Self::Provider(provider) = self else {
            return Ok(None);
        };
        let token = tokio::time::timeout(timeout, provider.token(&[BIGQUERY_SCOPE]))
            .await
            .map_err(|_| {
                SyncError::remote(
                    "the Google token endpoint did not answer in time",
                    "Check the server's network access to the key's token_uri, and token_sync.http_timeout.",
                )
            })?
            .map_err(|error| {
                SyncError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
                    "could not get an access token for BigQuery",
                    "Check that the service-account key in token_sync.credentials is valid and not revoked, and that the token endpoint is reachable.",
                )
                .with_detail(error.to_string())
            })?;
        Ok(Some(token.as_str().to_string()))
    }
}

fn service_account_from_file(path: &Path) -> SyncResult<CustomServiceAccount> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|error| {
        let (message, hint) = match error.kind() {
            std::io::ErrorKind::NotFound => (
                format!("the credentials file \"{shown}\" does not exist"),
                "Set token_sync.credentials to the path of the key file as the database server sees it.",
            ),
            std::io::ErrorKind::PermissionDenied => (
                format!("the credentials file \"{shown}\" cannot be read by the database server"),
                "Make the key readable by the OS user PostgreSQL runs as (e.g. chown postgres, chmod 600).",
            ),
            _ => (
                format!("the credentials file \"{shown}\" cannot be read: {error}"),
                "Set token_sync.credentials to a readable service-account key JSON file.",
            ),
        };
        SyncError::config(message, hint)
    })?;
    let not_a_key = |why: &str| {
        SyncError::config(
            format!("the credentials file \"{shown}\" is not a service-account key: {why}"),
            "Download a JSON key for the service account (IAM → Service accounts → Keys) and point token_sync.credentials at it.",
        )
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| not_a_key("it is not JSON"))?;
    if json.get("type").and_then(|t| t.as_str()) != Some("service_account") {
        return Err(not_a_key("its \"type\" is not \"service_account\""));
    }
    for field in ["client_email", "private_key", "token_uri"] {
        if json.get(field).and_then(|v| v.as_str()).is_none() {
            return Err(not_a_key(&format!("it has no \"{field}\"")));
        }
    }
    CustomServiceAccount::from_json(&text)
        .map_err(|_| not_a_key("its private key cannot be loaded"))
}
