"""What an analyst does, in a real browser: sign in (and the CSRF guard), search, decide a
merge proposal and undo it, import a CSV, manage models and dead letters, read PII only with
the scope; and what another brand's key or a read-only key can never do."""

from __future__ import annotations

import re
from uuid import UUID

import httpx

from tests.dashboard.conftest import open_page, shot, sign_in


async def _csrf(page) -> str:
    return await page.locator("input[name=csrf_token]").first.get_attribute("value")


async def test_sign_in_cookie_csrf_and_sign_out(browser, base_url, data, rt):
    async with httpx.AsyncClient(base_url=base_url) as h:
        r = await h.get("/dashboard/profiles")
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
        login = await h.get("/dashboard/login")
        # The sign-in form itself needs its token (double-submit cookie).
        r = await h.post("/dashboard/login", data={"api_key": data.a.admin_key})
        assert r.status_code == 403
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        r = await h.post("/dashboard/login", data={"api_key": "cb_wrong", "csrf_token": token})
        assert r.status_code == 401 and "not valid" in r.text
        r = await h.post(
            "/dashboard/login",
            data={"api_key": data.a.admin_key, "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert r.status_code == 403
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.admin_key, "/dashboard/review")
        assert page.url.endswith("/dashboard/review")
        cookie = next(c for c in await page.context.cookies() if c["name"] == "cb_dash")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/dashboard"
        assert data.a.admin_key not in cookie["value"]
        review_id = await page.locator("[data-review]").first.get_attribute("data-review")
        # A signed-in session posting an admin action without the token: 403, nothing done.
        watch.allowed_status.add(403)
        r = await page.request.post(f"{base_url}/dashboard/review/{review_id}/approve", form={})
        assert r.status == 403 and "security token" in await r.text()
        r = await page.request.post(
            f"{base_url}/dashboard/review/{review_id}/approve", form={"csrf_token": "forged"}
        )
        assert r.status == 403
        status = await rt.pool.fetchval(
            "SELECT status FROM merge_review_queue WHERE brand_id = $1 AND id = $2",
            data.a.id,
            UUID(review_id),
        )
        assert status == "open"
        await page.click("button:has-text('Sign out')")
        await page.wait_for_url(re.compile(r".*/dashboard/login$"))
        # The old cookie no longer opens anything.
        async with httpx.AsyncClient(base_url=base_url, cookies={"cb_dash": cookie["value"]}) as h:
            r = await h.get("/dashboard/")
            assert r.status_code == 303
        assert watch.clean() == []


async def test_search_finds_a_generated_customer_by_name_email_phone_and_id(
    browser, base_url, data, rt
):
    row = await rt.pool.fetchrow(
        """SELECT p.id, p.name_norm, e.value_enc AS email, ph.value_enc AS phone
           FROM profiles p
           JOIN profile_identifiers e ON e.brand_id = p.brand_id AND e.profile_id = p.id
                                     AND e.kind = 'email' AND e.status = 'active'
           JOIN profile_identifiers ph ON ph.brand_id = p.brand_id AND ph.profile_id = p.id
                                      AND ph.kind = 'phone' AND ph.status = 'active'
           WHERE p.brand_id = $1 AND p.merged_into IS NULL AND p.name_norm LIKE '% %'
           ORDER BY p.id LIMIT 1""",
        data.a.id,
    )
    crypto = rt.keyring.for_brand(str(data.a.id))
    email, phone = crypto.decrypt_str(row["email"]), crypto.decrypt_str(row["phone"])
    first, last = row["name_norm"].split(" ", 1)
    typo = f"{first.title()} {last[:-1].title()}"  # a letter missing
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.read_key, "/dashboard/profiles")
        for query in (typo, email.upper(), phone.replace("+44", "0")):
            await page.fill("input[name=q]", query)
            async with page.expect_navigation():
                await page.click("button:has-text('Search')")
            assert await page.input_value("input[name=q]") == query
            links = page.locator(f"#profiles-table a[href='/dashboard/profiles/{row['id']}']")
            assert await links.count() == 1, query
        await shot(page, "profiles-search")
        await page.fill("input[name=q]", str(row["id"]))
        await page.click("button:has-text('Search')")
        await page.wait_for_url(f"**/dashboard/profiles/{row['id']}")
        # Filters and sorting: only High-risk... none here; Low churn, sorted by spend.
        await page.goto(f"{base_url}/dashboard/profiles?churn_band=Low&sort=total_spent&order=desc")
        spent = [
            float(t.replace(",", ""))
            for t in await page.locator("#profiles-table tbody td:nth-child(5)").all_inner_texts()
        ]
        assert spent and spent == sorted(spent, reverse=True)
        bands = await page.locator("#profiles-table .band").all_inner_texts()
        assert bands and all(b.startswith("Low") for b in bands)
        assert watch.clean() == []


async def test_approve_a_review_item_merges_and_unmerge_restores(browser, base_url, data, rt):
    pair = sorted(data.review_pair)
    review_id = await rt.pool.fetchval(
        "SELECT id FROM merge_review_queue WHERE brand_id = $1 AND status = 'open' "
        "AND profile_ids = $2",
        data.a.id,
        pair,
    )
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.admin_key, "/dashboard/review")
        card = page.locator(f"[data-review='{review_id}']")
        assert "Olamide Quartermaine" in await card.inner_text()
        assert await card.locator(".breakdown li").count() > 0  # the score breakdown
        await card.locator("button:has-text('Merge')").click()
        await page.wait_for_url(re.compile(r".*/dashboard/profiles/[0-9a-f-]+$"))
        assert "Merged 2 profiles" in await page.inner_text(".flash")
        survivor = UUID(page.url.rsplit("/", 1)[1])
        loser = next(p for p in pair if p != survivor)
        assert (
            await rt.pool.fetchval(
                "SELECT merged_into FROM profiles WHERE brand_id = $1 AND id = $2", data.a.id, loser
            )
            == survivor
        )
        # The merged-away id now opens the survivor's 360, which lists the merge.
        await page.goto(f"{base_url}/dashboard/profiles/{loser}")
        assert page.url.endswith(str(survivor))
        assert await page.locator("#merges .merge").count() >= 1
        identifiers = await page.inner_text("#identifiers")
        assert "Email" in identifiers.title() and "Phone" in identifiers.title()
        await shot(page, "customer360-merged")
        # Unmerge, through the confirmation dialog.
        await page.locator("#merges button:has-text('Unmerge')").first.click()
        await page.wait_for_selector("#confirm-dialog[open]")
        await shot(page, "unmerge-confirm")
        async with page.expect_navigation():
            await page.click("#confirm-ok")
        await page.wait_for_selector(".flash.ok")
        assert "Merge undone" in await page.inner_text(".flash")
        rows = await rt.pool.fetch(
            "SELECT id, merged_into FROM profiles WHERE brand_id = $1 AND id = ANY($2::uuid[])",
            data.a.id,
            pair,
        )
        assert {r["id"] for r in rows} == set(pair) and all(r["merged_into"] is None for r in rows)
        await page.goto(f"{base_url}/dashboard/profiles/{loser}")
        assert page.url.endswith(str(loser))
        await page.goto(f"{base_url}/dashboard/review?status=approved")
        assert await page.locator(f"[data-review='{review_id}']").count() == 1
        assert watch.clean() == []


CSV = """Email,Mobile,First Name,Surname,Bill No,Date,Product,Qty,Price
wilhelmina@csv-shop.co.uk,07700 900111,Wilhelmina,Fairweather,B-1,2025-06-01 10:00,Tea Tin,2,4.50
wilhelmina@csv-shop.co.uk,07700 900111,Wilhelmina,Fairweather,B-1,2025-06-01 10:00,Teapot,1,20.00
bartholomew@csv-shop.co.uk,07700 900222,Bartholomew,Pennywhistle,B-2,not a date,Mug,1,8.00
cornelius@csv-shop.co.uk,07700 900333,Cornelius,Ravensworth,B-3,2025-06-03 12:30,Mug,3,8.00
"""


async def test_csv_upload_mapping_preview_then_import(browser, base_url, data, rt, tmp_path):
    path = tmp_path / "till-export.csv"
    path.write_text(CSV)
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.ingest_key, "/dashboard/imports")
        await page.set_input_files("input[type=file]", str(path))
        await page.select_option("select[name=source]", "pos")
        await page.click("button:has-text('Upload and preview')")
        await page.wait_for_url(re.compile(r".*/dashboard/imports/[0-9a-f]+$"))
        # "Product" and "Bill No" are not names we recognise: every row fails until mapped.
        assert await page.inner_text("#rows-count") == "4"
        assert await page.inner_text("#rejected-count") == "4"
        errors = await page.inner_text("#row-errors")
        assert "needs product_id, sku or name" in errors and "occurred_at" in errors
        assert await page.locator("#run-form").count() == 0
        await page.select_option("select[name='map:Product']", "properties.items[].name")
        await page.select_option("select[name='map:Bill No']", "properties.order_id")
        async with page.expect_navigation():
            await page.click("button:has-text('Update preview')")
        assert await page.inner_text("#rejected-count") == "1"
        assert await page.inner_text("#row-errors tbody td:first-child") == "4"
        assert await page.inner_text("#events-count") == "2"  # B-1's two lines, one order
        preview = await page.inner_text("#preview-table")
        assert "Teapot" in preview and "Tea Tin" in preview and "Wilhelmina" in preview
        assert (
            await rt.pool.fetchval(
                "SELECT count(*) FROM profiles WHERE brand_id = $1 AND name_norm = "
                "'wilhelmina fairweather'",
                data.a.id,
            )
            == 0
        ), "a dry run stores nothing"
        await shot(page, "import-preview")
        await page.click("#run-form button")
        await page.wait_for_url(re.compile(r".*/dashboard/imports/jobs/[0-9a-f]+$"))
        await page.wait_for_selector("#import-job[data-status=done]", timeout=30_000)
        assert await page.inner_text("#r-accepted") == "2"
        assert await page.inner_text("#r-rejected") == "1"
        await shot(page, "import-done")
        assert await page.get_attribute(".progress", "aria-valuenow") == "2"
        assert watch.clean() == []
    total = await rt.pool.fetchval(
        "SELECT total_spent FROM profiles WHERE brand_id = $1 AND name_norm = "
        "'wilhelmina fairweather' AND merged_into IS NULL",
        data.a.id,
    )
    assert float(total) == 29.0


async def test_another_brand_sees_nothing_of_brand_a(browser, base_url, data, rt):
    a_profile = data.review_pair[0]
    merge_id = await rt.pool.fetchval(
        "SELECT id FROM identity_merge_log WHERE brand_id = $1 LIMIT 1", data.a.id
    )
    review_id = await rt.pool.fetchval(
        "SELECT id FROM merge_review_queue WHERE brand_id = $1 AND status = 'open' LIMIT 1",
        data.a.id,
    )
    a_name = await rt.pool.fetchval(
        "SELECT name_norm FROM profiles WHERE brand_id = $1 AND id = $2", data.a.id, a_profile
    )
    b_live = await rt.pool.fetchval(
        "SELECT count(*) FROM profiles WHERE brand_id = $1 AND merged_into IS NULL", data.b.id
    )
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.b.admin_key)
        assert (await page.text_content("[data-kpi=profiles]")).strip() == str(b_live)
        watch.allowed_status.add(404)
        resp = await page.goto(f"{base_url}/dashboard/profiles/{a_profile}")
        assert resp.status == 404 and a_name.split()[0] not in (await page.content()).lower()
        await shot(page, "404-other-brand")
        token = await _csrf(page)
        for url in (
            f"/dashboard/merges/{merge_id}/unmerge",
            f"/dashboard/review/{review_id}/approve",
            f"/dashboard/review/{review_id}/reject",
        ):
            r = await page.request.post(f"{base_url}{url}", form={"csrf_token": token})
            assert r.status == 404, url
        await page.goto(f"{base_url}/dashboard/review")
        assert await page.locator(f"[data-review='{review_id}']").count() == 0
        await page.goto(f"{base_url}/dashboard/profiles?q={a_name.replace(' ', '+')}")
        assert a_name.split()[0] not in (await page.inner_text("main")).lower()
        await page.goto(f"{base_url}/dashboard/profiles/{data.b_profile}")
        assert "Bartholomew" in await page.inner_text("h1")
        assert watch.clean() == []
    assert (
        await rt.pool.fetchval(
            "SELECT status FROM merge_review_queue WHERE brand_id = $1 AND id = $2",
            data.a.id,
            review_id,
        )
        == "open"
    )
    assert (
        await rt.pool.fetchval(
            "SELECT rolled_back_at FROM identity_merge_log WHERE brand_id = $1 AND id = $2",
            data.a.id,
            merge_id,
        )
        is None
    )


async def test_read_only_key_gets_403_on_admin_actions(browser, base_url, data, rt):
    review_id = await rt.pool.fetchval(
        "SELECT id FROM merge_review_queue WHERE brand_id = $1 AND status = 'open' LIMIT 1",
        data.a.id,
    )
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.read_key, "/dashboard/review")
        assert await page.locator("button:has-text('Merge')").count() == 0
        assert await page.locator("nav a:has-text('Imports')").count() == 0
        token = await _csrf(page)
        watch.allowed_status.add(403)
        for url, form in (
            (f"/dashboard/review/{review_id}/approve", {}),
            ("/dashboard/models/churn/activate", {"version": "2"}),
            ("/dashboard/models/churn/rollback", {}),
            ("/dashboard/integrations/deadletters/replay", {"all": "1"}),
        ):
            r = await page.request.post(f"{base_url}{url}", form={"csrf_token": token, **form})
            assert r.status == 403, url
            assert "lacks the &#39;admin&#39; scope" in await r.text()
        resp = await page.goto(f"{base_url}/dashboard/imports")
        assert resp.status == 403
        assert "ingest" in await page.inner_text(".error-message")
        await shot(page, "403-read-only")
        assert watch.clean() == []
    assert (
        await rt.pool.fetchval(
            "SELECT status FROM merge_review_queue WHERE brand_id = $1 AND id = $2",
            data.a.id,
            review_id,
        )
        == "open"
    )


async def test_identifiers_are_masked_unless_the_key_has_pii_read(browser, base_url, data, rt):
    pid = await rt.pool.fetchval(
        "SELECT profile_id FROM profile_identifiers WHERE brand_id = $1 AND kind = 'email' "
        "AND status = 'active' ORDER BY profile_id LIMIT 1",
        data.a.id,
    )
    enc = await rt.pool.fetchval(
        "SELECT value_enc FROM profile_identifiers WHERE brand_id = $1 AND profile_id = $2 "
        "AND kind = 'email' LIMIT 1",
        data.a.id,
        pid,
    )
    email = rt.keyring.for_brand(str(data.a.id)).decrypt_str(enc)
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.read_key, f"/dashboard/profiles/{pid}?pii=1")
        text = await page.inner_text("#identifiers")
        assert email not in text and "***" in text
        assert await page.locator("#reveal-pii").count() == 0
        assert watch.clean() == []
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.pii_key, f"/dashboard/profiles/{pid}")
        assert email not in await page.inner_text("#identifiers")  # opt-in, as in the API
        await page.click("#reveal-pii")
        await page.wait_for_url(f"**/dashboard/profiles/{pid}?pii=1")
        assert email in await page.inner_text("#identifiers")
        assert watch.clean() == []
    audited = await rt.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE brand_id = $1 AND action = 'pii.read' "
        "AND subject = $2",
        data.a.id,
        str(pid),
    )
    assert audited == 1


async def test_models_activate_and_roll_back(browser, base_url, data, rt):
    async def active() -> int:
        return await rt.pool.fetchval(
            "SELECT version FROM model_versions WHERE brand_id = $1 AND kind = 'churn' "
            "AND status = 'active'",
            data.a.id,
        )

    assert await active() == 1
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.admin_key, "/dashboard/models")
        churn = page.locator("[data-kind=churn]")
        assert "0.840" in await churn.inner_text()  # v2's AUC shown
        async with page.expect_navigation():
            await churn.locator("button:has-text('Activate')").click()
        await page.wait_for_selector(".flash.ok")
        assert await active() == 2
        await shot(page, "models")
        await page.locator("[data-kind=churn] button:has-text('Roll back')").click()
        async with page.expect_navigation():
            await page.click("#confirm-ok")
        await page.wait_for_selector(".flash.ok")
        assert "version 1 is active again" in await page.inner_text(".flash")
        assert await active() == 1
        assert watch.clean() == []


async def test_integrations_show_secret_status_and_replay_dead_letters(browser, base_url, data, rt):
    async with open_page(browser) as (page, watch):
        await sign_in(page, base_url, data.a.admin_key, "/dashboard/integrations")
        shopify = await page.inner_text("#sources tr[data-source=shopify]")
        woo = await page.inner_text("#sources tr[data-source=woocommerce]")
        assert "set" in shopify and "missing" in woo
        assert "shpss_dashboard_secret_1" not in await page.content()
        assert await page.locator("#dead tbody tr").count() == 1
        assert "poison row" in await page.inner_text("#dead")
        await shot(page, "integrations-dead-letters")
        await page.click("button:has-text('Replay all')")
        async with page.expect_navigation():
            await page.click("#confirm-ok")
        await page.wait_for_selector(".flash")
        assert "Replayed 1 dead letter(s); 0 still dead" in await page.inner_text(".flash")
        assert await page.locator("#dead").count() == 0
        assert watch.clean() == []
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND status = 'dead'", data.a.id
        )
        == 0
    )
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM profiles WHERE brand_id = $1 AND name_norm = 'dorothea lazarus'",
            data.a.id,
        )
        == 1
    )
