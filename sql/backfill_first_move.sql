-- Example migration: the "first move" of a new mirror, the 14 days before today (UTC).
-- Each day is its own subtransaction: a failing day is reported, the others are kept.
-- The migration fails (and rolls back entirely) only if a day could not be loaded, so
-- that a deploy never goes ahead on a partial mirror.
--   psql -d mydb -f sql/backfill_first_move.sql
\set ON_ERROR_STOP on

BEGIN;

CREATE TEMP TABLE first_move ON COMMIT DROP AS
SELECT * FROM token_backfill((now() AT TIME ZONE 'UTC')::date - 14,
                             (now() AT TIME ZONE 'UTC')::date - 1);

SELECT day, status, rows_loaded, error FROM first_move ORDER BY day;

DO $$
DECLARE failed text;
BEGIN
    SELECT string_agg(day::text, ', ' ORDER BY day) INTO failed FROM first_move WHERE status <> 'succeeded';
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'token_sync backfill failed for %', failed
              USING HINT = 'See token_sync.runs for the errors; fix them and run the migration again.';
    END IF;
END $$;

COMMIT;
