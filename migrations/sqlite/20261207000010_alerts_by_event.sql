-- Retention keeps the events an alert of a kept incident points to: purging asks, per
-- event, whether such an alert exists.
CREATE INDEX alerts_by_event ON alerts (tenant, event_key) WHERE event_key IS NOT NULL;
