-- The incident page reads an incident's newest timeline entries and, apart from them, its
-- notes: a partial index holds the notes alone.
CREATE INDEX incident_timeline_notes ON incident_timeline (tenant, incident_id, at, id)
    WHERE kind = 'note';
