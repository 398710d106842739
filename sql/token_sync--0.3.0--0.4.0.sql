-- token_sync 0.3.0 -> 0.4.0
-- token_verify_day's fingerprint covers JSON and INTERVAL columns: the two spellings it needs
-- on PostgreSQL's side, as a new install makes them (src/sql_api/fingerprint.rs).
\echo Use "ALTER EXTENSION token_sync UPDATE" to load this file. \quit

CREATE FUNCTION token_sync.canonical_json(value jsonb) RETURNS text
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'canonical_json_wrapper';

CREATE FUNCTION token_sync.canonical_interval(bigquery_text text) RETURNS text
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'canonical_interval_wrapper';
