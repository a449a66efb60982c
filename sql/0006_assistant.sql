-- The assistant's surfaces: Slack workspaces and Gorgias accounts connected to a brand, and
-- the deliveries the assistant has handled (idempotency and durability of ticket work).
-- Secrets are sealed with the brand's AES-GCM key (core.crypto), never stored in clear.

-- A Slack request names its workspace (team_id) before the brand is known, so this is looked
-- up by team_id, like api_keys by key hash: a reference table keyed globally.
CREATE TABLE slack_workspaces (
    team_id             text PRIMARY KEY CHECK (team_id ~ '^[A-Z0-9]{2,32}$'),
    brand_id            uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    team_name           text NOT NULL DEFAULT '',
    bot_user_id         text NOT NULL,
    bot_id              text NOT NULL DEFAULT '',
    bot_token_enc       bytea NOT NULL,
    -- Only when the brand runs its own Slack app; NULL means the app-wide SLACK_SIGNING_SECRET.
    signing_secret_enc  bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_workspaces_brand ON slack_workspaces (brand_id);

-- One Gorgias helpdesk per brand. The webhook token is a brand secret (brand_secrets, source
-- 'gorgias'), so rotation keeps the previous token valid like the other webhooks.
CREATE TABLE gorgias_accounts (
    brand_id     uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    base_url     text NOT NULL,
    -- The REST API user (Basic auth user name and the sender of internal notes).
    api_email    text NOT NULL,
    api_key_enc  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id)
);

-- What the assistant has been asked to do and done, per surface:
--   gorgias 'ticket:<id>'            the inbox row of a webhook (pending until processed; the
--                                    sweeper retries rows left pending by a crash)
--   gorgias 'message:<ticket>:<id>'  the claim on one customer message: one note each
CREATE TABLE assistant_deliveries (
    brand_id      uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    surface       text NOT NULL,
    delivery_key  text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'failed')),
    -- Bumped by every webhook for the same row: a run only closes the generation it read.
    generation    integer NOT NULL DEFAULT 1,
    attempts      integer NOT NULL DEFAULT 0,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    claimed_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, surface, delivery_key)
);
CREATE INDEX assistant_deliveries_open ON assistant_deliveries (brand_id, surface, updated_at)
    WHERE status IN ('pending', 'processing');
