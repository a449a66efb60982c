-- The integrations page and `cbrain deadletter list` read a brand's dead inbox rows, newest
-- first: a partial index holds only those (normally a handful), like raw_events_suppressed.
CREATE INDEX raw_events_dead ON raw_events (brand_id, id) WHERE status = 'dead';
