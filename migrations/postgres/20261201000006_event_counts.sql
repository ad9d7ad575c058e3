-- Events stored per tenant and minute of ingest, added to by the transaction that stores them:
-- the overview reads its events total and events-per-minute series here instead of counting
-- the events table. Filled once from the events stored so far.
CREATE TABLE event_counts (
    tenant  TEXT    NOT NULL,
    -- Minutes since the Unix epoch (UTC) of events.ingested_at.
    minute  BIGINT  NOT NULL,
    n       BIGINT  NOT NULL,
    PRIMARY KEY (tenant, minute)
);

INSERT INTO event_counts (tenant, minute, n)
SELECT tenant, floor(EXTRACT(EPOCH FROM ingested_at) / 60)::bigint, COUNT(*) FROM events GROUP BY 1, 2;
