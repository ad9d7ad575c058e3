-- Events: every stored event keeps all of its original fields (JSONB) and its normalised core.
CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    tenant         TEXT        NOT NULL,
    -- 16-byte BLAKE3 digest of host + channel + record id + time, or of the content.
    dedup_key      BYTEA       NOT NULL,
    ts             TIMESTAMPTZ,
    host           TEXT,
    source         TEXT,
    event_id       BIGINT,
    record_id      BIGINT,
    severity       TEXT,
    user_name      TEXT,
    src_ip         TEXT,
    dst_ip         TEXT,
    process        TEXT,
    command_line   TEXT,
    parent_process TEXT,
    fields         JSONB       NOT NULL,
    ingested_at    TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX events_dedup ON events (tenant, dedup_key);
CREATE INDEX events_tenant_ts ON events (tenant, ts);
