"""Every page loads in a real browser with no console error and no failed request, shows real
data of the signed-in brand, and is saved as a screenshot (.artifacts/dashboard/)."""

from __future__ import annotations

from tests.dashboard.conftest import open_page, shot, sign_in


async def test_every_page_loads_clean_with_its_data(browser, base_url, data, rt):
    a = data.a
    live = await rt.pool.fetchval(
        "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", a.id
    )
    top = await rt.pool.fetchrow(
        "SELECT p.id, p.name_norm FROM profiles p JOIN predictions c ON c.brand_id = p.brand_id "
        "AND c.profile_id = p.id AND c.kind = 'churn' WHERE p.brand_id = $1 "
        "AND p.merged_into IS NULL ORDER BY p.order_count DESC, p.id LIMIT 1",
        a.id,
    )
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, a.admin_key)
        # Overview: KPIs and every chart drawn by the bundled Plotly, values printed on them.
        assert page.url.endswith("/dashboard/")
        assert (await page.text_content("[data-kpi=profiles]")).replace(",", "") == str(live)
        for chart in ("events", "revenue", "churn", "ltv", "segments"):
            await page.wait_for_selector(f"[data-chart={chart}][data-rendered='1']")
            texts = await page.locator(
                f"[data-chart={chart}] .textpoint, [data-chart={chart}] text.bartext"
            ).count()
            assert texts > 0, f"{chart}: no value printed on the chart"
        assert await page.locator("[data-chart=churn]").inner_text() != ""
        await shot(page, "overview")

        await page.goto(f"{base_url}/dashboard/profiles")
        rows = page.locator("#profiles-table tbody tr")
        assert await rows.count() == 50
        await shot(page, "profiles")

        await page.goto(f"{base_url}/dashboard/profiles/{top['id']}")
        await page.wait_for_selector("#timeline tbody tr")
        assert top["name_norm"].split()[0] in (await page.text_content("h1")).lower()
        assert await page.locator("#timeline tbody tr").count() > 0
        assert await page.locator(".drivers li").count() > 0  # churn drivers
        await shot(page, "customer360")

        for path, name in (
            ("/dashboard/review", "review"),
            ("/dashboard/imports", "imports"),
            ("/dashboard/integrations", "integrations"),
            ("/dashboard/models", "models"),
        ):
            resp = await page.goto(f"{base_url}{path}")
            assert resp.status == 200, path
            await shot(page, name)
        assert watch.clean() == []
