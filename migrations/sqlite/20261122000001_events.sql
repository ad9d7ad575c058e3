-- Events: every stored event keeps all of its original fields (JSON) and its normalised core.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    -- 16-byte BLAKE3 digest of host + channel + record id + time, or of the content.
    dedup_key      BLOB    NOT NULL,
    -- Event time, microseconds since the Unix epoch, UTC.
    ts             INTEGER,
    host           TEXT,
    source         TEXT,
    event_id       INTEGER,
    record_id      INTEGER,
    severity       TEXT,
    user_name      TEXT,
    src_ip         TEXT,
    dst_ip         TEXT,
    process        TEXT,
    command_line   TEXT,
    parent_process TEXT,
    fields         TEXT    NOT NULL,
    ingested_at    INTEGER NOT NULL
);

CREATE UNIQUE INDEX events_dedup ON events (tenant, dedup_key);
CREATE INDEX events_tenant_ts ON events (tenant, ts);
