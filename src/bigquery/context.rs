//! One SQL call's way to BigQuery: the settings it read and its clients, each made the
//! first time the call needs it and kept for the call's other requests and days: the REST
//! client and the Storage Read API's gRPC channel. The credentials are looked up again each
//! time a client is handed out (a stat of the key file, the provider kept per backend), so
//! a key file replaced during a long backfill is used from the next day on.

use super::auth::Authorizer;
use super::rest::client::BigQueryClient;
use super::storage::client::StorageClient;
use crate::error::{SyncError, SyncResult};
use crate::settings::Settings;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Clones (one per piece of work on the network threads) share the settings and the clients.
#[derive(Clone)]
pub struct BigQuery {
    pub settings: Arc<Settings>,
    rest: Arc<OnceCell<BigQueryClient>>,
    storage: Arc<OnceCell<StorageClient>>,
}

impl BigQuery {
    /// The settings, read and validated; no client is made yet.
    pub fn load() -> SyncResult<Self> {
        Ok(Self::new(Settings::load()?))
    }

    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            rest: Arc::default(),
            storage: Arc::default(),
        }
    }

    /// The REST client. A failure to make it is not kept: the call's next day tries again.
    pub async fn rest(&self) -> SyncResult<BigQueryClient> {
        let client = self
            .rest
            .get_or_try_init(|| BigQueryClient::connect(&self.settings))
            .await?;
        Ok(client.with_auth(self.credentials().await?))
    }

    /// The Storage Read API's client, at `token_sync.storage_api_url`.
    pub async fn storage(&self) -> SyncResult<StorageClient> {
        let Some(url) = self.settings.storage_api_url.as_ref() else {
            return Err(SyncError::config(
                "token_sync.storage_api_url is not set for this token_sync.api_url",
                "Set it to the Storage Read API of the same BigQuery, or set token_sync.read_api = 'query'.",
            ));
        };
        let client = self
            .storage
            .get_or_try_init(|| StorageClient::connect(&self.settings, url))
            .await?;
        Ok(client.with_auth(self.credentials().await?))
    }

    async fn credentials(&self) -> SyncResult<Authorizer> {
        Authorizer::for_credentials(&self.settings.credentials).await
    }
}
