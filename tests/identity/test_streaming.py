import asyncio
import random

from core import brands
from identity.keys import identifier_keys
from tests.identity.streaming_helpers import ev, ingest, live_profiles, partition


async def test_placeholder_email_never_links_anyone(rt, brand):
    events = [ev(f"p{i}", first=f"Person{i}", email="test@test.com") for i in range(6)]
    await ingest(rt, brand, events)
    assert await live_profiles(rt, brand.id) == 6
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM profile_identifiers WHERE brand_id = $1", brand.id
        )
        == 0
    )


async def test_a_stores_phone_typed_on_many_bills_becomes_shared_and_links_no_one(rt, brand):
    names = ["Alice", "Bashir", "Chen", "Dolores", "Emeka", "Fatima", "Gustav", "Hiro"]
    events = [
        ev(f"bill{i}", first=n, source="pos", phone="01632 960001", loyalty_id=f"LC{i:04d}")
        for i, n in enumerate(names)
    ]
    await ingest(rt, brand, events, batch=1)
    assert await live_profiles(rt, brand.id) == 8
    status = await rt.pool.fetchval(
        "SELECT status FROM profile_identifiers WHERE brand_id = $1 AND kind = 'phone'", brand.id
    )
    assert status == "shared"
    # a later bill with only that phone and a known person's loyalty card still finds that person
    await ingest(
        rt,
        brand,
        [ev("bill-late", first="Chen", source="pos", phone="01632960001", loyalty_id="LC0002")],
    )
    assert await live_profiles(rt, brand.id) == 8
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM identity_merge_log WHERE brand_id = $1", brand.id
        )
        == 0
    )


async def test_anonymous_browsing_is_stitched_on_login(rt, brand):
    await ingest(
        rt,
        brand,
        [
            ev("v1", type="product_view", cookie_id="ck-1"),
            ev("v2", type="cart_add", cookie_id="ck-1"),
        ],
    )
    await ingest(
        rt,
        brand,
        [ev("login", first="Mo", type="identify", email="mo@cafe-mail.com", cookie_id="ck-1")],
    )
    assert await partition(rt, brand.id) == {frozenset({"v1", "v2", "login"})}


async def test_a_family_tablet_never_merges_two_known_people(rt, brand):
    await ingest(rt, brand, [ev("a", first="Ana", email="ana@home-mail.com", device_id="tablet-1")])
    await ingest(rt, brand, [ev("b", first="Ben", email="ben@home-mail.com", device_id="tablet-1")])
    assert await partition(rt, brand.id) == {frozenset({"a"}), frozenset({"b"})}


async def test_the_same_person_across_channels_is_one_profile_with_an_explained_merge(rt, brand):
    await ingest(
        rt,
        brand,
        [ev("web", first="Jane", last="Doe", source="shopify", email="jane@doe-mail.com")],
    )
    await ingest(rt, brand, [ev("till", first="Jane", source="pos", phone="07700 900321")])
    await ingest(
        rt,
        brand,
        [
            ev(
                "wa",
                first="Jane",
                source="whatsapp",
                type="message_in",
                whatsapp="whatsapp:+447700900321",
                email="jane@doe-mail.com",
            )
        ],
    )
    assert await partition(rt, brand.id) == {frozenset({"web", "till", "wa"})}
    log = await rt.pool.fetchrow(
        "SELECT score, contributions, reason FROM identity_merge_log WHERE brand_id = $1", brand.id
    )
    assert log["score"] >= 0.8
    assert {"prior", "phone"} <= set(log["contributions"])
    assert abs(sum(log["contributions"].values()) - _bits(log["score"])) < 1e-6


def _bits(p: float) -> float:
    import math

    return math.log2(p / (1 - p))


async def test_refund_without_identifiers_goes_to_the_buyer(rt, brand):
    await ingest(rt, brand, [ev("o-9", first="Kim", email="kim@buyer-mail.com")])
    refund = ev("r-9", type="refund")
    refund["properties"] = {"order_id": "o-9", "total": 10.0}
    await ingest(rt, brand, [refund])
    assert await partition(rt, brand.id) == {frozenset({"o-9", "r-9"})}
    row = await rt.pool.fetchrow(
        "SELECT refund_total, order_count FROM profiles WHERE brand_id = $1", brand.id
    )
    assert float(row["refund_total"]) == 10.0 and row["order_count"] == 1


async def test_suppressed_identifiers_drop_later_events(rt, brand):
    crypto = rt.keyring.for_brand(str(brand.id))
    [key] = identifier_keys(crypto, {"email": "Gone@Forgotten-mail.com"})
    await rt.pool.execute(
        "INSERT INTO suppressions (brand_id, kind, hash) VALUES ($1, $2, $3)",
        brand.id,
        key.kind,
        key.hash,
    )
    await ingest(
        rt, brand, [ev("s1", email="gone@forgotten-mail.com"), ev("s2", email="kept@mail-x.com")]
    )
    assert await partition(rt, brand.id) == {frozenset({"s2"})}
    st = await rt.pool.fetchval(
        "SELECT status FROM raw_events WHERE brand_id = $1 AND event_id = 's1'", brand.id
    )
    assert st == "suppressed"


def _chain_events():
    """Adversarial chains: A-B, B-C, C-A links between three identities of one person, plus
    an unrelated person, a household member sharing the phone, and typos."""
    return [
        ev("e1", first="Lena", last="Ortiz", email="lena@ortiz-mail.com"),
        ev("e2", first="Lena", phone="07700 900555", loyalty_id="LOY-55"),
        ev("e3", first="Lena", last="Ortiz", email="lena@ortiz-mail.com", phone="+447700900555"),
        ev("e4", first="Lena", loyalty_id="LOY-55", email="l.ortiz@work-mail.com"),
        ev("e5", first="Lena", last="Ortis", email="l.ortiz@work-mail.com", phone="07700900555"),
        ev("e6", first="Marco", last="Ortiz", phone="07700 900555"),
        ev("e7", first="Pat", last="Quinn", email="pat@quinn-mail.com"),
        ev("e8", first="Pat", phone="07700 900999", email="pat@quinn-mail.com"),
    ]


async def test_any_order_gives_the_same_partition(rt):
    from tests.conftest import make_brand

    results = set()
    events = _chain_events()
    for seed in range(5):
        b = await make_brand(rt, "ord")
        order = events[:]
        random.Random(seed).shuffle(order)
        await ingest(rt, b, order, batch=1 if seed % 2 else 500)
        results.add(frozenset(await partition(rt, b.id)))
    assert len(results) == 1
    [parts] = results
    assert frozenset({"e7", "e8"}) in parts
    assert frozenset({"e6"}) in parts  # the household member is not merged into Lena


async def test_eight_concurrent_workers_reach_the_single_worker_partition(rt):
    from tests.conftest import make_brand

    events = []
    for person in range(40):
        events += [
            ev(f"c{person}-{k}", first=f"P{person}", **ids)
            for k, ids in enumerate(
                [
                    {"email": f"p{person}@a-mail.com"},
                    {"phone": f"07700 9{person:05d}"},
                    {"email": f"p{person}@a-mail.com", "phone": f"07700 9{person:05d}"},
                    {"loyalty_id": f"L{person}"},
                    {"loyalty_id": f"L{person}", "phone": f"+4477009{person:05d}"},
                ]
            )
        ]
    single = await make_brand(rt, "one")
    await ingest(rt, single, events, batch=1)
    expected = await partition(rt, single.id)
    assert len(expected) == 40
    multi = await make_brand(rt, "many")
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    lanes = [shuffled[i::8] for i in range(8)]
    await asyncio.gather(*(ingest(rt, multi, lane, batch=3) for lane in lanes))
    assert await partition(rt, multi.id) == expected
    dupes = await rt.pool.fetchval(
        "SELECT count(*) FROM (SELECT kind, hash FROM profile_identifiers WHERE brand_id = $1 "
        "GROUP BY 1, 2 HAVING count(*) > 1) d",
        multi.id,
    )
    assert dupes == 0


async def test_brand_thresholds_are_per_brand(rt):
    from tests.conftest import make_brand

    strict = await make_brand(
        rt, "strict", {"default_region": "GB", "identity": {"auto_merge_threshold": 0.99999999}}
    )
    async with rt.pool.acquire() as conn:
        b = await brands.get_brand_by_id(conn, strict.id)
    assert b.settings["identity"]["auto_merge_threshold"] == 0.99999999
    await ingest(
        rt,
        strict,
        [ev("x1", first="Ola", email="ola@x-mail.com"), ev("x2", first="Ola", phone="07700900888")],
        batch=1,
    )
    await ingest(rt, strict, [ev("x3", first="Ola", email="ola@x-mail.com", phone="07700900888")])
    assert await live_profiles(rt, strict.id) == 2
    assert (
        await rt.pool.fetchval(
            "SELECT count(*) FROM merge_review_queue WHERE brand_id = $1", strict.id
        )
        == 1
    )


async def test_households_are_linked_not_merged(rt, brand):
    home = {"address": "12 Orchard Lane", "postcode": "m1 1ae", "city": "Manchester"}
    a = ev("h1", first="Priya", last="Shah", email="priya@shah-mail.com")
    a["traits"].update(home)
    b = ev("h2", first="Arjun", last="Shah", email="arjun@shah-mail.com")
    b["traits"].update({**home, "postcode": "M1 1AE", "address": "12, Orchard Ln"})
    c = ev("h3", first="Mira", last="Shah", source="pos", phone="0161 496 0000", loyalty_id="MS1")
    d = ev("h4", first="Dev", last="Shah", source="pos", phone="01614960000", loyalty_id="DS1")
    await ingest(rt, brand, [a, b, c, d], batch=1)
    assert await live_profiles(rt, brand.id) == 4
    rows = await rt.pool.fetch(
        "SELECT name_norm, household_id FROM profiles WHERE brand_id = $1 ORDER BY name_norm",
        brand.id,
    )
    hh = {r["name_norm"]: r["household_id"] for r in rows}
    assert hh["priya shah"] is not None and hh["priya shah"] == hh["arjun shah"]
    assert hh["mira shah"] is not None and hh["mira shah"] == hh["dev shah"]


async def test_rows_whose_identifier_is_held_elsewhere_wait_while_the_rest_go_through(rt, brand):
    """Another transaction holds one person's email lock: a batch resolves everyone else at
    once, leaves that person's events (and the refund of their order, which carries no
    identifier) pending, and resolves them in its second pass once the lock is released."""
    from core.events import CanonicalEvent
    from identity import repo
    from ingestion.processing import process_batch
    from ingestion.service import accept

    refund = {
        **ev("busy-refund", type="refund"),
        "identifiers": {},
        "properties": {"order_id": "busy-1", "total": 10.0},
    }
    events = [
        ev("busy-1", first="Ines", email="ines@held-mail.com"),
        ev("free-1", first="Omar", email="omar@free-mail.com"),
        refund,
        ev("free-2", first="Lea", phone="07700 900321"),
    ]
    chunk = [
        (j, CanonicalEvent.model_validate({**e, "brand": brand.slug})) for j, e in enumerate(events)
    ]
    raw_ids = [r.raw_id for r in await accept(rt, brand.id, chunk, conn=rt.pool)]
    crypto = rt.keyring.for_brand(str(brand.id))
    [key] = identifier_keys(crypto, {"email": "ines@held-mail.com"})

    async def stored() -> set[str]:
        rows = await rt.pool.fetch("SELECT event_id FROM events WHERE brand_id = $1", brand.id)
        return {r["event_id"] for r in rows}

    holder = await rt.pool.acquire()
    tx = holder.transaction()
    await tx.start()
    await repo.lock_keys(holder, brand.id, [f"{key.kind}:{key.hash.hex()}"])
    task = asyncio.create_task(process_batch(rt, brand.brand, raw_ids))
    try:
        for _ in range(100):
            if await stored() == {"free-1", "free-2"}:
                break
            await asyncio.sleep(0.05)
        assert await stored() == {"free-1", "free-2"}
        pending = await rt.pool.fetchval(
            "SELECT count(*) FROM raw_events WHERE brand_id = $1 AND status = 'pending'", brand.id
        )
        assert pending == 2 and not task.done()
    finally:
        await tx.rollback()
        await rt.pool.release(holder)
    result = await asyncio.wait_for(task, 30)
    assert result.processed == 4 and result.claimed == 4 and result.deferred == []
    assert await stored() == {"free-1", "free-2", "busy-1", "busy-refund"}
    owners = await rt.pool.fetch(
        "SELECT event_id, profile_id FROM events WHERE brand_id = $1 AND event_id LIKE 'busy-%'",
        brand.id,
    )
    assert len({r["profile_id"] for r in owners}) == 1  # the refund follows its purchase
