-- Notifications: a durable outbox. Every change to an incident (opened, grown, status moved) is
-- recorded in the transaction that makes it; the dispatcher turns each change into deliveries,
-- one per channel (unique per tenant and dedup_key, so planning twice adds nothing), and sends
-- them with retries. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE incident_changes (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    incident_id    INTEGER NOT NULL REFERENCES incidents (id),
    -- created | grown | status
    kind           TEXT    NOT NULL,
    alert_count    INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    at             INTEGER NOT NULL,
    dispatched_at  INTEGER
);
CREATE INDEX incident_changes_pending ON incident_changes (id) WHERE dispatched_at IS NULL;

CREATE TABLE notify_deliveries (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    -- What makes a delivery unique: `new:<incident>:<channel>`, `escalate:<incident>:<channel>`…
    dedup_key    TEXT    NOT NULL,
    incident_id  INTEGER REFERENCES incidents (id),
    channel      TEXT    NOT NULL,
    -- new | update | escalation | digest
    kind         TEXT    NOT NULL,
    alert_count  INTEGER NOT NULL,
    -- JSON: what the message needs beyond the incident (a digest's incident ids, the policy).
    payload      TEXT    NOT NULL,
    -- pending | sent | held | digested | cancelled | failed
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    digest_id    INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    sent_at      INTEGER
);
CREATE UNIQUE INDEX notify_deliveries_dedup ON notify_deliveries (tenant, dedup_key);
CREATE INDEX notify_deliveries_due ON notify_deliveries (due_at, id) WHERE state = 'pending';
CREATE INDEX notify_deliveries_by_incident ON notify_deliveries (tenant, incident_id, channel, id);
CREATE INDEX notify_deliveries_by_channel ON notify_deliveries (channel, state, sent_at);
CREATE INDEX notify_deliveries_recent ON notify_deliveries (tenant, id);
