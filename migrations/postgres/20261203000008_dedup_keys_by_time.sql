-- De-duplication keys now lead with the event's time (`EventRow::dedup_key`): 5 bytes of
-- ts >> 20 (microseconds since the epoch, in units of 1.05 s) plus 2^39, clamped to 5 bytes,
-- big-endian (zeros for an event without a time), then the first 11 bytes of the former 16-byte
-- BLAKE3 digest. A batch's keys then sit together in events_dedup instead of landing on one
-- random index page per event. The alerts' copies of the keys change with them.
CREATE FUNCTION pg_temp.siren_key_prefix(ts TIMESTAMPTZ) RETURNS BYTEA AS $$
    SELECT CASE WHEN ts IS NULL THEN decode('0000000000', 'hex')
                ELSE substring(int8send(greatest(0, least(1099511627775,
                    (floor(extract(epoch FROM ts) * 1000000)::BIGINT >> 20) + 549755813888))) FROM 4 FOR 5)
           END
$$ LANGUAGE SQL IMMUTABLE;

UPDATE alerts a SET event_key = pg_temp.siren_key_prefix(e.ts) || substring(e.dedup_key FROM 1 FOR 11)
FROM events e
WHERE a.event_key IS NOT NULL AND e.tenant = a.tenant AND e.dedup_key = a.event_key;

DROP INDEX events_dedup;
UPDATE events SET dedup_key = pg_temp.siren_key_prefix(ts) || substring(dedup_key FROM 1 FOR 11);
CREATE UNIQUE INDEX events_dedup ON events (tenant, dedup_key);
