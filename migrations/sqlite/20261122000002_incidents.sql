-- Incidents, their alerts and timeline, the audit log, users, and correlation state.
-- Times are microseconds since the Unix epoch (UTC); lists are JSON arrays of strings.
CREATE TABLE incidents (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    group_key      TEXT    NOT NULL,
    rule_id        TEXT    NOT NULL,
    title          TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    severity_rank  INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    resolution     TEXT,
    assignee       TEXT,
    rule_ids       TEXT    NOT NULL,
    techniques     TEXT    NOT NULL,
    hosts          TEXT    NOT NULL,
    users          TEXT    NOT NULL,
    ips            TEXT    NOT NULL,
    investigation  TEXT    NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    alert_count    INTEGER NOT NULL,
    event_count    INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX incidents_open ON incidents (tenant, group_key, last_seen DESC, id DESC);
CREATE INDEX incidents_recent ON incidents (tenant, last_seen DESC, id DESC);
CREATE INDEX incidents_by_status ON incidents (tenant, status, last_seen DESC, id DESC);
CREATE INDEX incidents_by_severity ON incidents (tenant, severity, last_seen DESC, id DESC);
CREATE INDEX incidents_by_assignee ON incidents (tenant, assignee, last_seen DESC, id DESC);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    rule_id      TEXT    NOT NULL,
    rule_title   TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    -- The triggering event's de-duplication key (events.dedup_key); null for correlations.
    event_key    BLOB,
    ts           INTEGER NOT NULL,
    host         TEXT,
    user_name    TEXT,
    src_ip       TEXT,
    detail       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX alerts_by_incident ON alerts (tenant, incident_id, ts);

CREATE TABLE incident_timeline (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    detail       TEXT    NOT NULL
);
CREATE INDEX incident_timeline_by_incident ON incident_timeline (tenant, incident_id, at, id);

-- Append-only: nothing updates or deletes these rows.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    tenant  TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    origin  TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    object  TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (tenant, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_by_name ON users (tenant, name);

CREATE TABLE correlation_state (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    state       BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
