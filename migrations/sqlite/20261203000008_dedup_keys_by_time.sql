-- De-duplication keys now lead with the event's time (`EventRow::dedup_key`): 5 bytes of
-- ts >> 20 (units of 1.05 s) plus 2^39, clamped to 5 bytes, big-endian (zeros for an event
-- without a time), then the first 11 bytes of the former 16-byte BLAKE3 digest. A batch's keys
-- then sit together in events_dedup instead of landing on one random index page per event.
-- The alerts' copies of the keys change with them. (`||` makes text of blobs: hence the casts.)
UPDATE alerts SET event_key = COALESCE((
    SELECT CAST(CASE WHEN e.ts IS NULL THEN zeroblob(5)
                     ELSE unhex(printf('%010X', max(0, min(1099511627775, (e.ts >> 20) + 549755813888))))
                END || substr(e.dedup_key, 1, 11) AS BLOB)
    FROM events e
    WHERE e.tenant = alerts.tenant AND e.dedup_key = alerts.event_key
), event_key)
WHERE event_key IS NOT NULL;

DROP INDEX events_dedup;
UPDATE events SET dedup_key = CAST(
    CASE WHEN ts IS NULL THEN zeroblob(5)
         ELSE unhex(printf('%010X', max(0, min(1099511627775, (ts >> 20) + 549755813888))))
    END || substr(dedup_key, 1, 11) AS BLOB);
CREATE UNIQUE INDEX events_dedup ON events (tenant, dedup_key);
