CREATE TABLE token_sync.tables (
    source_table text        PRIMARY KEY,
    target_table text        NOT NULL,
    time_column  text        NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE token_sync.tables IS 'The BigQuery tables token_sync mirrors: token_sync.add_table registers, token_sync.sync_all syncs them all.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.tables', '');
