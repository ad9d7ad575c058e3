-- Events brought back from an archive: until when they are kept whatever their age
-- (microseconds since the Unix epoch). A purge never archives them again: they are there.
ALTER TABLE events ADD COLUMN restored_until INTEGER;
