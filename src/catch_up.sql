CREATE TABLE token_sync.catch_up (
    target_table  text    NOT NULL,
    day           date    NOT NULL,
    tries         integer NOT NULL,
    last_tried_on date    NOT NULL,
    next_try_on   date,
    last_error    text,
    PRIMARY KEY (target_table, day)
);
COMMENT ON TABLE token_sync.catch_up IS 'The nightly catch-up''s failed tries of stale days: next_try_on is NULL once a day is given up.';
SELECT pg_catalog.pg_extension_config_dump('token_sync.catch_up', '');

CREATE VIEW token_sync.stale_days AS
SELECT s.target_table,
       s.day,
       s.source_table,
       s.last_attempt_status,
       coalesce(c.last_error, s.last_error) AS last_error,
       coalesce(c.tries, 0)                 AS catch_up_tries,
       c.last_tried_on,
       c.next_try_on,
       CASE WHEN c.day IS NOT NULL AND c.next_try_on IS NULL THEN 'given_up'
            WHEN c.next_try_on > (pg_catalog.now() AT TIME ZONE 'UTC')::date THEN 'waiting'
            ELSE 'due' END                  AS state
FROM token_sync.day_status s
LEFT JOIN token_sync.catch_up c ON c.target_table = s.target_table AND c.day = s.day
WHERE s.missing OR s.last_attempt_status IN ('failed', 'abandoned');
COMMENT ON VIEW token_sync.stale_days IS 'Days whose last attempt failed or was abandoned, or that never loaded between days that did: due (the next catch-up tries it), waiting (until next_try_on) or given_up.';
