-- Server authentication and agents: API tokens, browser sessions, global admins, agent
-- heartbeats; indexes the dashboard's queries and the live stream need.
-- Times are microseconds since the Unix epoch (UTC).

-- A global admin works on every tenant (it picks one per request).
ALTER TABLE users ADD COLUMN is_global INTEGER NOT NULL DEFAULT 0;

-- Bearer tokens for scripts and agents. Only a keyed BLAKE3 hash of the secret is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    is_global    INTEGER NOT NULL DEFAULT 0,
    secret_hash  BLOB    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX api_tokens_by_hash ON api_tokens (secret_hash);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant, id);

-- Browser sessions: only a hash of the cookie's secret is kept.
CREATE TABLE sessions (
    id_hash     BLOB    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    user_name   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Agents as they last reported.
CREATE TABLE agents (
    tenant       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    hostname     TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    queue_depth  INTEGER NOT NULL,
    last_error   TEXT,
    origin       TEXT    NOT NULL,
    last_seen    INTEGER NOT NULL,
    PRIMARY KEY (tenant, agent)
);

-- The live stream polls for incidents changed by other processes; the overview counts
-- recent events and alerts.
CREATE INDEX incidents_by_update ON incidents (updated_at, id);
CREATE INDEX incidents_by_created ON incidents (tenant, created_at);
CREATE INDEX events_by_ingest ON events (tenant, ingested_at);
CREATE INDEX alerts_by_created ON alerts (tenant, created_at);
