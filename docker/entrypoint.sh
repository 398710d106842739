#!/usr/bin/env bash
# Starts PostgreSQL through the image's docker-entrypoint.sh (docker/postgres-entrypoint.sh)
# with pg_cron and token_sync preloaded and the token_sync settings taken from the
# environment, on every start (so a changed variable takes effect at the next restart):
#   TOKEN_SYNC_CREDENTIALS   path of a service-account key; "adc" for Application Default
#                            Credentials (e.g. GKE Workload Identity); unset: the key at
#                            /run/secrets/gcp_key if it is not empty, else offline mode
#                            (the emulator on 127.0.0.1:9050, no auth)
#   TOKEN_SYNC_BILLING_PROJECT, TOKEN_SYNC_SOURCE_TABLE, TOKEN_SYNC_TARGET_TABLE,
#   TOKEN_SYNC_API_URL, TOKEN_SYNC_LOCATION, TOKEN_SYNC_MAX_BYTES_BILLED
set -euo pipefail

if [ "${1:-}" != postgres ]; then
  exec docker-entrypoint.sh "$@"
fi

credentials=${TOKEN_SYNC_CREDENTIALS:-}
if [ -z "$credentials" ] && [ -s /run/secrets/gcp_key ]; then
  credentials=/run/secrets/gcp_key
fi
case "$credentials" in
  "")
    echo "token_sync: no Google key configured, offline mode (BigQuery emulator on 127.0.0.1:9050)" >&2
    credentials=none
    api_url=${TOKEN_SYNC_API_URL:-http://127.0.0.1:9050}
    billing=${TOKEN_SYNC_BILLING_PROJECT:-billing}
    ;;
  adc)
    credentials=""
    api_url=${TOKEN_SYNC_API_URL:-https://bigquery.googleapis.com}
    billing=${TOKEN_SYNC_BILLING_PROJECT:?TOKEN_SYNC_BILLING_PROJECT must be set}
    ;;
  *)
    api_url=${TOKEN_SYNC_API_URL:-https://bigquery.googleapis.com}
    billing=${TOKEN_SYNC_BILLING_PROJECT:?TOKEN_SYNC_BILLING_PROJECT must be set}
    ;;
esac

settings=(
  -c "shared_preload_libraries=pg_cron,token_sync"
  -c "cron.database_name=${POSTGRES_DB:-tokens}"
  -c cron.host=/var/run/postgresql
  -c "token_sync.billing_project=$billing"
  -c "token_sync.credentials=$credentials"
  -c "token_sync.api_url=$api_url"
  -c "token_sync.source_table=${TOKEN_SYNC_SOURCE_TABLE:-bigquery-public-data.crypto_ethereum.tokens}"
  -c "token_sync.target_table=${TOKEN_SYNC_TARGET_TABLE:-public.raw_tokens}"
  -c "token_sync.location=${TOKEN_SYNC_LOCATION:-US}"
  -c "token_sync.max_bytes_billed=${TOKEN_SYNC_MAX_BYTES_BILLED:-10GB}"
)
exec docker-entrypoint.sh "$@" "${settings[@]}"
