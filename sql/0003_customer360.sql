-- Customer 360 and privacy operations: keyset indexes for profile lists, prediction filters,
-- privacy job bookkeeping, and an audit index by subject.

-- Profiles are created with first/last seen set; a default makes that hold for any writer,
-- which the list's keyset paging on last_seen relies on.
UPDATE profiles SET first_seen = coalesce(first_seen, created_at),
                    last_seen = coalesce(last_seen, created_at)
WHERE first_seen IS NULL OR last_seen IS NULL;
ALTER TABLE profiles ALTER COLUMN first_seen SET DEFAULT now(),
                     ALTER COLUMN last_seen SET DEFAULT now();

-- One index per sort key of GET /v1/profiles, each ending in id so (value, id) is a total order
-- for keyset paging; a b-tree scanned backwards serves the descending sort. The last_seen one
-- supersedes profiles_live_last_seen (same leading columns, plus the tie-breaker).
CREATE INDEX profiles_live_by_last_seen ON profiles (brand_id, last_seen, id) WHERE merged_into IS NULL;
DROP INDEX profiles_live_last_seen;
CREATE INDEX profiles_live_by_spent ON profiles (brand_id, total_spent, id) WHERE merged_into IS NULL;
CREATE INDEX profiles_live_by_orders ON profiles (brand_id, order_count, id) WHERE merged_into IS NULL;
CREATE INDEX profiles_live_by_created ON profiles (brand_id, created_at, id) WHERE merged_into IS NULL;
CREATE INDEX profiles_live_by_name ON profiles (brand_id, name_norm, id) WHERE merged_into IS NULL;

-- Fuzzy name search (pg_trgm) on live profiles only, brand first like every other index
-- (btree_gin lets the uuid lead a GIN index); replaces the brand-less profiles_name_trgm.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX profiles_name_trgm_live ON profiles USING gin (brand_id, name_norm gin_trgm_ops)
    WHERE merged_into IS NULL;
DROP INDEX profiles_name_trgm;

-- Segment and churn-band filters (predictions kind 'segment' / 'churn', value in band).
CREATE INDEX predictions_kind_band ON predictions (brand_id, kind, band, profile_id);

-- Privacy jobs: when a runner took the job and how often it was tried.
ALTER TABLE deletion_requests
    ADD COLUMN started_at timestamptz,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0;

-- "Who read this profile's PII" and pseudonymising a deleted person's audit rows.
CREATE INDEX audit_log_subject ON audit_log (brand_id, subject) WHERE subject IS NOT NULL;

-- Inbox rows dropped because they named a deleted person still hold the sealed payload; the
-- privacy runner purges them, and this keeps finding them cheap.
CREATE INDEX raw_events_suppressed ON raw_events (brand_id, id) WHERE status = 'suppressed';
