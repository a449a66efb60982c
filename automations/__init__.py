"""Automations: triggers on behaviour and predictions, safe outbound actions.

`models` (what an automation is), `triggers` (the set-based matcher), `conditions`
(conditions on profile fields), `safety` (cooldown, caps, quiet hours, consent, dry run),
`actions` (WhatsApp, email, webhook, Slack senders with classified retries), `compose` (the
message for one run), `executor` (one run, start to end), `scheduler` (the runner: stream
consumer, due-run poller, sweeps), `service` (what the API and the CLI share), `api`
(REST), `samples` (the demo's two automations), `config` (settings), `repo` (all SQL).
See docs/automations.md.
"""
