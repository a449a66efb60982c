"""Conversation memory: the last few turns of a Slack thread or a ticket, in Redis.

Only the question and the final (filtered) answer text are kept, never tool payloads, so
memory cannot smuggle a tool result past the output filter. Keys are per brand (they shard
with the brand on a cluster) and the conversation id is hashed (it may contain ids we do
not want in key listings). Redis being down degrades to no memory, never to an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from uuid import UUID

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.redis import brand_key

log = logging.getLogger(__name__)
MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    answer: str
    at: float


class Memory:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int, max_turns: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.max_turns = max_turns

    @staticmethod
    def key(brand_id: UUID, conversation_id: str) -> str:
        digest = hashlib.sha256(conversation_id.encode()).hexdigest()[:32]
        return brand_key(str(brand_id), "assistant", "conv", digest)

    async def history(self, brand_id: UUID, conversation_id: str | None) -> list[Turn]:
        if not conversation_id or self.max_turns <= 0:
            return []
        try:
            raw = await self.redis.lrange(self.key(brand_id, conversation_id), -self.max_turns, -1)
        except RedisError as exc:
            log.warning("assistant memory unavailable: %s", type(exc).__name__)
            return []
        turns = []
        for item in raw:
            try:
                d = orjson.loads(item)
                turns.append(Turn(str(d["q"]), str(d["a"]), float(d.get("at", 0))))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return turns

    async def remember(
        self, brand_id: UUID, conversation_id: str | None, question: str, answer: str
    ) -> None:
        if not conversation_id or self.max_turns <= 0:
            return
        key = self.key(brand_id, conversation_id)
        item = orjson.dumps({"q": question[:MAX_TEXT], "a": answer[:MAX_TEXT], "at": time.time()})
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, item)
                pipe.ltrim(key, -self.max_turns, -1)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except RedisError as exc:
            log.warning("assistant memory not saved: %s", type(exc).__name__)

    async def forget(self, brand_id: UUID, conversation_id: str) -> None:
        await self.redis.delete(self.key(brand_id, conversation_id))
