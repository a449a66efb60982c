-- Automations and journeys: run lifecycle columns, the indexes the runner and the safety
-- checks use, per-automation trigger state (threshold crossings, segment and stage changes)
-- and the sweep cursors. Every index starts with brand_id.

ALTER TABLE automations
    ADD COLUMN description text NOT NULL DEFAULT '',
    -- When the automation was last switched on: state triggers are armed at that moment.
    ADD COLUMN enabled_at timestamptz;
-- Names are how people (and the demo's sample installer) tell automations apart.
CREATE UNIQUE INDEX automations_name ON automations (brand_id, name);
CREATE INDEX automations_enabled ON automations (brand_id) WHERE enabled;

-- Run lifecycle: scheduled -> claimed -> sending -> sent | failed | unknown, or
-- claimed -> dry_run | skipped | cancelled | scheduled (deferred by quiet hours).
ALTER TABLE automation_runs
    ADD COLUMN trigger_type text NOT NULL DEFAULT '',
    ADD COLUMN channel text NOT NULL DEFAULT '',
    ADD COLUMN dry_run boolean NOT NULL DEFAULT false,
    ADD COLUMN claimed_at timestamptz,
    -- When the safety checks let the run through (what caps and cooldowns count).
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT automation_runs_status CHECK (status IN (
        'scheduled', 'claimed', 'sending', 'sent', 'dry_run', 'skipped', 'cancelled',
        'failed', 'unknown'));

-- At most one open run per automation and person: concurrent evaluators cannot both queue one.
CREATE UNIQUE INDEX automation_runs_open ON automation_runs (brand_id, automation_id, profile_id)
    WHERE status IN ('scheduled', 'claimed', 'sending');
CREATE INDEX automation_runs_by_automation
    ON automation_runs (brand_id, automation_id, created_at DESC, id DESC);
-- Frequency caps and the per-automation cooldown count decided runs of one person.
CREATE INDEX automation_runs_decided ON automation_runs (brand_id, profile_id, decided_at)
    WHERE status IN ('sending', 'sent', 'dry_run', 'unknown');
-- The reaper: runs whose worker stopped while holding them.
CREATE INDEX automation_runs_inflight ON automation_runs (brand_id, claimed_at)
    WHERE status IN ('claimed', 'sending');

-- What a state trigger last saw for a person (above/below a threshold, segment, stage), so
-- a change fires once and a steady state never fires again.
CREATE TABLE automation_state (
    brand_id       uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    automation_id  uuid NOT NULL,
    profile_id     uuid NOT NULL,
    state          jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (brand_id, automation_id, profile_id)
);
CREATE INDEX automation_state_profile ON automation_state (brand_id, profile_id);

-- Watermarks of the runner's sweeps (predictions and journeys changed since, full passes).
CREATE TABLE automation_cursors (
    brand_id    uuid NOT NULL REFERENCES brands(id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       timestamptz NOT NULL,
    PRIMARY KEY (brand_id, name)
);

ALTER TABLE journeys ADD COLUMN stage_since timestamptz;
-- The runner's sweeps page through what changed since their watermark, (changed at, person).
CREATE INDEX journeys_updated ON journeys (brand_id, updated_at, profile_id);
CREATE INDEX predictions_changed
    ON predictions (brand_id, (greatest(created_at, as_of)), profile_id);
