-- Registers the seven tables of BigQuery's crypto_ethereum dataset with token_sync, each
-- into public.raw_<table> with its days cut by its partitioning column (blocks by
-- timestamp, the others by block_timestamp). Run as a superuser after CREATE EXTENSION:
--   psql -d mydb -f sql/crypto_ethereum.sql
--   psql -d mydb -v dataset=my-project.my_copy -f sql/crypto_ethereum.sql   # another copy
-- Running it again updates the registrations. Then pg_cron/schedule_registered.sql syncs
-- them every night, and token_sync.backfill or token_sync.sync_all loads the past.
\set ON_ERROR_STOP on
\if :{?dataset}
\else
  \set dataset 'bigquery-public-data.crypto_ethereum'
\endif

SELECT registered.source_table, registered.target_table, registered.time_column
FROM unnest(ARRAY['blocks', 'transactions', 'logs', 'token_transfers', 'traces', 'contracts', 'tokens'])
     WITH ORDINALITY AS dataset_table(name, position),
     LATERAL token_sync.add_table(:'dataset' || '.' || dataset_table.name) AS registered
ORDER BY dataset_table.position;
