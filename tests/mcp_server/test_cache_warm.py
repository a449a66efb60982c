"""The stale-while-revalidate cache and the warm-up job."""

from __future__ import annotations

import time

import orjson
from pydantic import BaseModel

from mcp_server import _cache
from mcp_server.warm import WARM_CALLS, warm
from tests.helpers import wait_for


class Answer(BaseModel):
    n: int


async def test_fresh_stale_and_missing(rt, brand):
    calls = []

    async def compute() -> Answer:
        calls.append(1)
        return Answer(n=len(calls))

    args = {"x": 1}
    assert (await _cache.cached(rt, brand.id, "t", args, Answer, compute)).n == 1
    assert (await _cache.cached(rt, brand.id, "t", args, Answer, compute)).n == 1  # fresh hit
    key = _cache.cache_key(brand.id, "t", args)
    old = orjson.dumps({"at": time.time() - 10_000, "v": {"n": 1}})
    await rt.redis.set(key, old)
    # Stale: answered at once with the old value, refreshed in the background.
    assert (await _cache.cached(rt, brand.id, "t", args, Answer, compute)).n == 1

    async def refreshed() -> bool:
        return orjson.loads(await rt.redis.get(key))["v"]["n"] == 2

    await wait_for(refreshed, timeout=10)
    assert not await rt.redis.exists(key + ":lock")
    other = _cache.cache_key(brand.id, "t", {"x": 2})
    assert other != key and _cache.cache_key(brand.id, "t", {"x": 1}) == key


async def test_warm_fills_the_cache_for_the_usual_questions(dataset, rt):
    done = await warm(rt, dataset.a.id)
    assert [(n, a) for n, a, _, _ in done] == WARM_CALLS
    assert [e for *_, e in done if e] == []
    keys = [k async for k in rt.redis.scan_iter(match=f"cb:{{{dataset.a.id}}}:mcp:*")]
    assert len({k for k in keys if not k.endswith(b":lock")}) >= len(WARM_CALLS)
