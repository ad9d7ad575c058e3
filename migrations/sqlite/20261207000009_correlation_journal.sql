-- The correlation journal: what each committed batch fed a tenant's correlator, in commit
-- order, appended in the batch's own transaction. The saved state is a checkpoint that
-- covers the journal up to `seq`; the entries it covers are deleted when it is saved.
-- `correlation_heads` holds each journal's last sequence number; a batch locks its row
-- first, so that the writers of one tenant take turns across processes.
CREATE TABLE correlation_journal (
    tenant  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    seq     INTEGER  NOT NULL,
    entry   BLOB    NOT NULL,
    PRIMARY KEY (tenant, name, seq)
);

CREATE TABLE correlation_heads (
    tenant  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    seq     INTEGER  NOT NULL,
    PRIMARY KEY (tenant, name)
);

ALTER TABLE correlation_state ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
