-- Nothing reads events by ingest time any more (the overview counts come from event_counts):
-- the index only cost every stored event one more index entry.
DROP INDEX IF EXISTS events_by_ingest;
