-- Events stored per tenant and minute of ingest, added to by the transaction that stores them:
-- the overview reads its events total and events-per-minute series here instead of counting
-- the events table. Filled once from the events stored so far.
CREATE TABLE event_counts (
    tenant  TEXT    NOT NULL,
    -- Minutes since the Unix epoch (UTC) of events.ingested_at.
    minute  INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute)
);

INSERT INTO event_counts (tenant, minute, n)
SELECT tenant, ingested_at / 60000000, COUNT(*) FROM events GROUP BY tenant, ingested_at / 60000000;
