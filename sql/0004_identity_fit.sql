-- The comparison levels behind each review proposal and each merge, so reviewers' answers
-- (approve / reject / rollback) can re-fit the scoring weights (`cbrain identity fit`).
ALTER TABLE merge_review_queue ADD COLUMN features jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE identity_merge_log ADD COLUMN features jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Households: people who share an address or a household phone are linked, never merged.
CREATE INDEX IF NOT EXISTS households_link ON households (brand_id, link_kind, link_hash);
