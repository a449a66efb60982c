"""Resources (customer://, segment://) and prompts, in process."""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp_server.conftest import INJECTION


async def test_customer_resource_follows_the_pii_scope(dataset, connect):
    uri = f"customer://{dataset.injected}"
    async with connect(dataset.a) as c:
        masked = json.loads((await c.read_resource(uri)).contents[0].text)
        templates = (await c.list_resource_templates()).resource_templates
    async with connect(dataset.a, pii=True) as c:
        clear = json.loads((await c.read_resource(uri)).contents[0].text)
    assert {t.uri_template for t in templates} == {"customer://{customer_ref}", "segment://{name}"}
    assert masked["customer_ref"] == str(dataset.injected) and masked["name"] is None
    assert masked["identifiers"][0]["value"] == "+44 ***** **123"
    assert clear["recent_interactions"][0]["text"]["untrusted_text"] == INJECTION
    assert clear["identifiers"][0]["value"] == dataset.injected_phone


async def test_segment_resource_and_missing_resources(dataset, rt, connect):
    async with connect(dataset.a) as c:
        seg = json.loads((await c.read_resource("segment://At%20Risk")).contents[0].text)
        with pytest.raises(MCPError, match="no segment"):
            await c.read_resource("segment://Platinum")
        with pytest.raises(MCPError, match="no such customer"):
            await c.read_resource("customer://01a20000-0000-7000-8000-000000000000")
    members = await rt.pool.fetch(
        """SELECT c.profile_id FROM predictions c JOIN predictions s
             ON s.brand_id = c.brand_id AND s.profile_id = c.profile_id AND s.kind = 'segment'
           WHERE c.brand_id = $1 AND c.kind = 'churn' AND s.band = 'At Risk'
           ORDER BY c.value DESC LIMIT 10""",
        dataset.a.id,
    )
    assert seg["segment"]["name"] == "At Risk"
    assert [m["customer_ref"] for m in seg["most_at_risk"]] == [
        str(r["profile_id"]) for r in members
    ]


async def test_prompts(dataset, connect):
    async with connect(dataset.a) as c:
        names = {p.name for p in (await c.list_prompts()).prompts}
        review = await c.get_prompt("churn_review", {"segment": "At Risk"})
        brief = await c.get_prompt("customer_briefing", {"customer": "jo@example-shop.co.uk"})
        campaign = await c.get_prompt("campaign_brief", {"goal": "upsell", "budget": "500"})
    assert names == {"churn_review", "campaign_brief", "customer_briefing"}
    assert 'segment="At Risk"' in review.messages[0].content.text
    assert "lookup_customer" in brief.messages[0].content.text
    assert "budget=500" in campaign.messages[0].content.text
    assert all("untrusted_text" in p.messages[0].content.text for p in (review, brief, campaign))
