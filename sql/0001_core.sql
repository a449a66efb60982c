-- Customer Brain core schema. Every table that holds brand data carries brand_id first in its
-- primary key and in every index, so distributing by brand_id (Citus) is configuration.
-- Forward-only; applied in one transaction by core/migrate.py.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;

-- Global (reference) tables -------------------------------------------------------------
CREATE TABLE brands (
    id          uuid PRIMARY KEY DEFAULT uuidv7(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{1,62}$'),
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Looked up by key hash before the brand is known, hence a reference table keyed globally.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT uuidv7(),
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    name         text NOT NULL DEFAULT '',
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_brand ON api_keys (brand_id);

-- Brand tables ---------------------------------------------------------------------------
CREATE TABLE brand_secrets (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT uuidv7(),
    source      text NOT NULL,
    secret_enc  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, id)
);
CREATE INDEX brand_secrets_source ON brand_secrets (brand_id, source, created_at DESC);

-- Webhook deliveries as received (raw body sealed), deduplicated on the provider's delivery id.
CREATE TABLE webhook_deliveries (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    source       text NOT NULL,
    delivery_id  text NOT NULL,
    topic        text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now(),
    body_enc     bytea NOT NULL,
    status       text NOT NULL DEFAULT 'accepted',
    error        text,
    event_count  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, source, delivery_id)
);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (brand_id, source, received_at DESC);

-- The inbox: every accepted canonical event, immutable, unique per (brand, source, event_id).
-- The payload is sealed (AES-GCM) because it carries identifiers.
CREATE TABLE raw_events (
    brand_id      uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    source        text NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    payload_enc   bytea NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processed', 'dead', 'suppressed')),
    attempts      integer NOT NULL DEFAULT 0,
    error         text,
    processed_at  timestamptz,
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, source, event_id)
);
CREATE INDEX raw_events_pending ON raw_events (brand_id, received_at) WHERE status = 'pending';

CREATE TABLE profiles (
    brand_id          uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id                uuid NOT NULL DEFAULT uuidv7(),
    merged_into       uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    first_seen        timestamptz,
    last_seen         timestamptz,
    -- Normalized full name, kept in clear for pg_trgm search (emails/phones never are).
    name_norm         text NOT NULL DEFAULT '',
    traits_enc        bytea,
    city              text,
    country           text,
    event_count       integer NOT NULL DEFAULT 0,
    order_count       integer NOT NULL DEFAULT 0,
    total_spent       numeric(14, 2) NOT NULL DEFAULT 0,
    refund_total      numeric(14, 2) NOT NULL DEFAULT 0,
    first_order_at    timestamptz,
    last_order_at     timestamptz,
    channels          text[] NOT NULL DEFAULT '{}',
    profile_strength  smallint NOT NULL DEFAULT 0,
    household_id      uuid,
    consent           jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags              text[] NOT NULL DEFAULT '{}',
    embedding         vector(32),
    version           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (brand_id, id)
);
CREATE INDEX profiles_live_last_seen ON profiles (brand_id, last_seen DESC) WHERE merged_into IS NULL;
CREATE INDEX profiles_merged_into ON profiles (brand_id, merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX profiles_name_trgm ON profiles USING gin (name_norm gin_trgm_ops);
CREATE INDEX profiles_household ON profiles (brand_id, household_id) WHERE household_id IS NOT NULL;
CREATE INDEX profiles_embedding ON profiles USING hnsw (embedding vector_cosine_ops);

-- One identifier value belongs to exactly one profile: the keyed hash is the only match key.
CREATE TABLE profile_identifiers (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    kind         text NOT NULL,
    hash         bytea NOT NULL,
    profile_id   uuid NOT NULL,
    value_enc    bytea NOT NULL,
    masked       text NOT NULL,
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'shared', 'placeholder', 'invalid')),
    source       text NOT NULL DEFAULT '',
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, kind, hash)
);
CREATE INDEX profile_identifiers_profile ON profile_identifiers (brand_id, profile_id);

CREATE TABLE events (
    brand_id      uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    raw_event_id  bigint NOT NULL,
    source        text NOT NULL,
    event_id      text NOT NULL,
    type          text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    profile_id    uuid NOT NULL,
    order_id      text,
    total         numeric(14, 2),
    currency      text,
    store_id      text,
    properties    jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Free text (WhatsApp bodies, ticket text) may hold PII: sealed.
    content_enc   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, source, event_id)
);
CREATE INDEX events_profile_time ON events (brand_id, profile_id, occurred_at DESC);
CREATE INDEX events_type_time ON events (brand_id, type, occurred_at);
CREATE INDEX events_properties ON events USING gin (properties jsonb_path_ops);

CREATE TABLE identity_merge_log (
    brand_id      uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT uuidv7(),
    survivor_id   uuid NOT NULL,
    merged_ids    uuid[] NOT NULL,
    reason        text NOT NULL,
    score         double precision,
    contributions jsonb NOT NULL DEFAULT '{}'::jsonb,
    snapshot      jsonb NOT NULL,
    decided_by    text NOT NULL DEFAULT 'auto',
    created_at    timestamptz NOT NULL DEFAULT now(),
    rolled_back_at timestamptz,
    PRIMARY KEY (brand_id, id)
);
CREATE INDEX identity_merge_log_survivor ON identity_merge_log (brand_id, survivor_id);
CREATE INDEX identity_merge_log_merged ON identity_merge_log USING gin (merged_ids);

CREATE TABLE merge_review_queue (
    brand_id      uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id            uuid NOT NULL DEFAULT uuidv7(),
    profile_ids   uuid[] NOT NULL,
    pair_key      text NOT NULL,
    score         double precision NOT NULL,
    contributions jsonb NOT NULL DEFAULT '{}'::jsonb,
    reason        text NOT NULL,
    evidence_hash text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'approved', 'rejected', 'superseded')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    decided_by    text,
    PRIMARY KEY (brand_id, id)
);
CREATE UNIQUE INDEX merge_review_open_pair ON merge_review_queue (brand_id, pair_key) WHERE status = 'open';
CREATE INDEX merge_review_status ON merge_review_queue (brand_id, status, created_at);

CREATE TABLE products (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    product_id  text NOT NULL,
    sku         text,
    name        text,
    category    text,
    price       numeric(14, 2),
    embedding   vector(32),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, product_id)
);
CREATE INDEX products_category ON products (brand_id, category);
CREATE INDEX products_embedding ON products USING hnsw (embedding vector_cosine_ops);

CREATE TABLE features (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    profile_id  uuid NOT NULL,
    as_of       date NOT NULL,
    values      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, profile_id, as_of)
);

CREATE TABLE model_versions (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT uuidv7(),
    kind         text NOT NULL,
    version      integer NOT NULL,
    status       text NOT NULL DEFAULT 'candidate'
                 CHECK (status IN ('candidate', 'active', 'retired')),
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    data_window  jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics      jsonb NOT NULL DEFAULT '{}'::jsonb,
    artifact     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, kind, version)
);
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (brand_id, kind) WHERE status = 'active';

CREATE TABLE predictions (
    brand_id          uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    profile_id        uuid NOT NULL,
    kind              text NOT NULL,
    model_version_id  uuid,
    as_of             timestamptz NOT NULL,
    value             double precision,
    band              text,
    details           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, profile_id, kind)
);
CREATE INDEX predictions_kind_value ON predictions (brand_id, kind, value DESC);

CREATE TABLE journeys (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    profile_id   uuid NOT NULL,
    stage        text NOT NULL,
    score        smallint NOT NULL DEFAULT 0,
    parts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    next_milestone text,
    next_action  jsonb NOT NULL DEFAULT '{}'::jsonb,
    history      jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, profile_id)
);
CREATE INDEX journeys_stage ON journeys (brand_id, stage);

CREATE TABLE automations (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT uuidv7(),
    name        text NOT NULL,
    trigger     jsonb NOT NULL,
    conditions  jsonb NOT NULL DEFAULT '[]'::jsonb,
    action      jsonb NOT NULL,
    enabled     boolean NOT NULL DEFAULT false,
    dry_run     boolean NOT NULL DEFAULT true,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, id)
);

CREATE TABLE automation_runs (
    brand_id       uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id             uuid NOT NULL DEFAULT uuidv7(),
    automation_id  uuid NOT NULL,
    profile_id     uuid,
    due_at         timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'scheduled',
    trigger_reason text NOT NULL DEFAULT '',
    idempotency_key text NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    error          text,
    provider_message_id text,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, idempotency_key)
);
CREATE INDEX automation_runs_due ON automation_runs (brand_id, due_at) WHERE status = 'scheduled';

CREATE TABLE conversations (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id          uuid NOT NULL DEFAULT uuidv7(),
    surface     text NOT NULL,
    thread_key  text NOT NULL,
    profile_id  uuid,
    turns       jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, id),
    UNIQUE (brand_id, surface, thread_key)
);

CREATE TABLE audit_log (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    subject     text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id  text,
    PRIMARY KEY (brand_id, id)
);
CREATE INDEX audit_log_time ON audit_log (brand_id, at DESC);

CREATE TABLE deletion_requests (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT uuidv7(),
    kind         text NOT NULL CHECK (kind IN ('delete', 'export', 'shop_redact')),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_by text NOT NULL,
    -- Keyed hashes of the identifiers the request names: never the values themselves.
    identifier_hashes jsonb NOT NULL DEFAULT '[]'::jsonb,
    result_enc   bytea,
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (brand_id, id)
);
CREATE INDEX deletion_requests_pending ON deletion_requests (brand_id, created_at) WHERE status = 'pending';

-- Identifiers of deleted people: later events carrying them are dropped.
CREATE TABLE suppressions (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    hash        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, kind, hash)
);
