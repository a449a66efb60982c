-- Identity resolution: per-identifier claim counting (shared-identifier guard), the platform
-- namespace of external ids (only same-platform ids can conflict), refunds found by order id,
-- and households.

ALTER TABLE profile_identifiers
    ADD COLUMN namespace text NOT NULL DEFAULT '',
    -- Distinct people (names) seen presenting this value; past the brand threshold the value
    -- is 'shared' and no longer links anyone.
    ADD COLUMN claims smallint NOT NULL DEFAULT 1;

CREATE INDEX profile_identifiers_shared ON profile_identifiers (brand_id, status) WHERE status <> 'active';
CREATE INDEX events_order ON events (brand_id, order_id) WHERE order_id IS NOT NULL;

CREATE TABLE households (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT uuidv7(),
    -- The keyed hash of what the members share (an address key or a phone).
    link_kind   text NOT NULL,
    link_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, link_kind, link_hash)
);

-- Profiles other than the owner that presented an identifier value (a household's shared
-- phone, a family tablet). They are candidates when that value shows up again, filtered by
-- name, so the outcome does not depend on who used the phone first; their count is the
-- claim count that marks a value as shared.
CREATE TABLE identifier_links (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    hash        bytea NOT NULL,
    profile_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, kind, hash, profile_id)
);
CREATE INDEX identifier_links_profile ON identifier_links (brand_id, profile_id);
