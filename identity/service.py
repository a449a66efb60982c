"""Streaming identity resolution: one batch of events, one transaction, one round trip for
candidate lookup.

Per event (ARCHITECTURE.md): no candidate -> new profile; one -> attach and learn the new
identifiers; several -> score (Fellegi-Sunter, `identity.scoring`) and auto-merge (>= 0.80,
at most 3 profiles), queue for review (0.45-0.80, more than 3, conflicting strong ids) or
leave apart. Guards: placeholders never link; a phone or loyalty id presented under clearly
different first names is a claim against it, and past the brand's threshold it becomes
"shared" and stops linking anyone; a weak id (device, cookie) only stitches an anonymous
profile into a known one, never two known people together.

Concurrency: advisory locks on every identifier of the batch (sorted, one statement), then
row locks on every candidate profile (sorted, one statement), so workers never deadlock and
one identifier never gets two profiles.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from core.brands import Brand
from core.crypto import BrandCrypto
from core.errors import CBrainError
from identity import households, repo
from identity import merge as merge_ops
from identity._compare import Entity, compare, dob_level
from identity._names import nickname_match, normalize_name_part
from identity._traits import normalize_address, normalize_city, normalize_postcode, parse_dob
from identity.keys import KIND_PRIORITY, IdKey, identifier_keys, mask, name_norm
from identity.normalize import Normalized
from identity.scoring import ScoringModel, default_model

# Kinds whose owner is checked against the event's first name before attaching: households
# share phones and loyalty cards, people rarely share an email or a platform account.
NAME_CHECKED = frozenset({"phone", "loyalty_id"})
MAX_PER_KIND = 10
_TRAIT_KEYS = (
    "first_name",
    "last_name",
    "city",
    "postcode",
    "country",
    "address",
    "state",
    "dob",
    "timezone",
    "card_last4",
)
_CONSENT_KEYS = ("email_consent", "whatsapp_consent", "sms_consent")


def uuid7() -> UUID:
    """Time-ordered UUID (v7), like Postgres' uuidv7(): ids made here sort with the others."""
    ms = int(datetime.now(UTC).timestamp() * 1000)
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    return UUID(int=value)


@dataclass
class IdentityConfig:
    region: str = "GB"
    provider_rules: bool = False
    blocklist: tuple[str, ...] = ()
    shared_threshold: int = 3
    model: ScoringModel = field(default_factory=default_model)

    @classmethod
    def of(cls, brand: Brand) -> IdentityConfig:
        s = brand.settings or {}
        ident = s.get("identity", {}) if isinstance(s.get("identity"), dict) else {}
        model = ScoringModel.from_dict(ident["model"]) if ident.get("model") else default_model()
        if ident.get("auto_merge_threshold") or ident.get("review_threshold"):
            model = model.with_thresholds(
                auto_merge=ident.get("auto_merge_threshold"), review=ident.get("review_threshold")
            )
        return cls(
            region=str(s.get("default_region", "GB")),
            provider_rules=bool(ident.get("email_provider_rules", False)),
            blocklist=tuple(ident.get("blocklist", ())),
            shared_threshold=int(ident.get("shared_threshold", 3)),
            model=model,
        )


@dataclass
class Profile:
    id: UUID
    created_at: datetime
    new: bool
    traits: dict[str, Any]
    keys: dict[tuple[str, bytes], str]  # (kind, hash) -> namespace
    strength: int
    keys_loaded: bool
    traits_dirty: bool = False
    consent: dict[str, Any] = field(default_factory=dict)
    strength_dirty: bool = False
    address_dirty: bool = False
    events: int = 0  # events it holds (stored count plus those resolved to it in this batch)

    @property
    def known(self) -> bool:
        """Carries at least one strong or medium identifier (not anonymous)."""
        return any(kind not in ("device_id", "cookie_id") for kind, _ in self.keys)

    def entity(self, extra: Iterable[IdKey] = ()) -> Entity:
        ids = [
            Normalized(k, f"{ns}:{h.hex()}" if k == "external" else h.hex(), True)
            for (k, h), ns in self.keys.items()
        ]
        for key in extra:
            ns = (key.value or "").split(":", 1)[0]
            ids.append(
                Normalized(
                    key.kind,
                    f"{ns}:{key.hash.hex()}" if key.kind == "external" else key.hash.hex(),
                    True,
                )
            )
        t = self.traits
        country = t.get("country") or "GB"
        return Entity(
            identifiers=tuple(dict.fromkeys(ids)),
            first_name=normalize_name_part(t.get("first_name")),
            last_name=normalize_name_part(t.get("last_name")),
            dob=parse_dob(t.get("dob")) if t.get("dob") else None,
            address=normalize_address(t.get("address")) if t.get("address") else "",
            postcode=normalize_postcode(t.get("postcode"), country) if t.get("postcode") else None,
            city=normalize_city(t.get("city")),
        )


@dataclass
class Resolution:
    """What one batch decided, and the writes that follow the events' insert."""

    brand_id: UUID
    crypto: BrandCrypto
    profile_ids: list[UUID | None]
    merges: int = 0
    reviews: int = 0
    final: dict[UUID, UUID] = field(default_factory=dict)
    recompute_ids: set[UUID] = field(default_factory=set)
    merged_events: list[dict[str, Any]] = field(default_factory=list)
    # Indexes of events left undecided because another transaction held an identifier.
    deferred: set[int] = field(default_factory=set)

    async def apply_aggregates(
        self, conn: asyncpg.Connection, events: list[dict[str, Any]]
    ) -> None:
        """Incremental aggregates for every touched profile; a full recompute for survivors."""
        deltas: dict[UUID, dict[str, Any]] = {}
        for ev, pid in zip(events, self.profile_ids, strict=True):
            if pid is None or pid in self.recompute_ids:
                continue
            d = deltas.setdefault(
                pid,
                {
                    "n": 0,
                    "orders": 0,
                    "spent": 0.0,
                    "refunds": 0.0,
                    "first": None,
                    "last": None,
                    "fo": None,
                    "lo": None,
                    "ch": set(),
                },
            )
            at = ev["_occurred_at"]
            d["n"] += 1
            d["first"] = at if d["first"] is None or at < d["first"] else d["first"]
            d["last"] = at if d["last"] is None or at > d["last"] else d["last"]
            d["ch"].add(ev["source"])
            total = (ev.get("properties") or {}).get("total")
            if ev["type"] == "purchase":
                d["orders"] += 1
                d["spent"] += round(float(total or 0), 2)
                d["fo"] = at if d["fo"] is None or at < d["fo"] else d["fo"]
                d["lo"] = at if d["lo"] is None or at > d["lo"] else d["lo"]
            elif ev["type"] == "refund":
                d["refunds"] += abs(round(float(total or 0), 2))
        if deltas:
            ids = sorted(deltas)
            await conn.execute(
                repo.APPLY_DELTAS,
                self.brand_id,
                ids,
                [deltas[i]["n"] for i in ids],
                [deltas[i]["orders"] for i in ids],
                [deltas[i]["spent"] for i in ids],
                [deltas[i]["refunds"] for i in ids],
                [deltas[i]["first"] for i in ids],
                [deltas[i]["last"] for i in ids],
                [deltas[i]["fo"] for i in ids],
                [deltas[i]["lo"] for i in ids],
                [",".join(sorted(deltas[i]["ch"])) for i in ids],
            )
        if self.recompute_ids:
            await repo.recompute(conn, self.brand_id, sorted(self.recompute_ids))

    async def after_commit(self, rt: Any) -> None:
        """Publish merges and drop cached 360s of every profile this batch changed."""
        from core.streams import MERGED, publish

        for m in self.merged_events:
            await publish(rt.redis, self.brand_id, MERGED, m)
        touched = {p for p in self.profile_ids if p is not None} | set(self.final)
        await invalidate(rt, self.brand_id, touched)


async def invalidate(rt: Any, brand_id: UUID, profile_ids: Iterable[UUID]) -> None:
    """Delete cached Customer 360s; a Redis outage is logged, not raised (the cache has a TTL)."""
    from core.redis import brand_key

    keys = [brand_key(str(brand_id), "p360", str(p)) for p in profile_ids]
    if not keys:
        return
    try:
        for i in range(0, len(keys), 500):
            await rt.redis.delete(*keys[i : i + 500])
    except Exception:
        from core.logging import get_logger

        get_logger("cbrain.identity").warning("cache invalidation failed", n=len(keys))


def _names_conflict(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two clearly different first names (not a typo, nickname or initial)."""
    from rapidfuzz.distance import JaroWinkler

    fa = normalize_name_part(a.get("first_name"))
    fb = normalize_name_part(b.get("first_name"))
    if not fa or not fb or fa == fb:
        return False
    if fa[0] == fb[0] and (len(fa) == 1 or len(fb) == 1):
        return False
    if nickname_match(fa, fb):
        return False
    return JaroWinkler.similarity(fa, fb) < 0.8


class _Batch:
    """The in-memory state of one batch: who owns which identifier, profiles in play."""

    def __init__(
        self, conn: asyncpg.Connection, crypto: BrandCrypto, brand: Brand, cfg: IdentityConfig
    ) -> None:
        self.conn = conn
        self.crypto = crypto
        self.brand = brand
        self.cfg = cfg
        self.owner: dict[tuple[str, bytes], UUID] = {}
        self.links: dict[tuple[str, bytes], set[UUID]] = {}
        self.new_links: list[tuple[tuple[str, bytes], UUID]] = []
        self.status: dict[tuple[str, bytes], str] = {}
        self.profiles: dict[UUID, Profile] = {}
        self.redirect: dict[UUID, UUID] = {}
        self.new_ids: list[tuple[IdKey, UUID, str, datetime]] = []
        self.claims: dict[tuple[str, bytes], int] = {}
        self.res = Resolution(brand.id, crypto, [])

    def live(self, pid: UUID) -> UUID:
        seen = 0
        while pid in self.redirect and seen < 100:
            pid = self.redirect[pid]
            seen += 1
        return pid

    # -- loading ---------------------------------------------------------------------------
    async def load_profiles(self, ids: Iterable[UUID]) -> None:
        want = sorted({i for i in ids if i not in self.profiles})
        if not want:
            return
        await repo.lock_profiles(self.conn, self.brand.id, want)
        rows = await self.conn.fetch(repo.LOAD_PROFILES, self.brand.id, want)
        for r in rows:
            if r["merged_into"] is not None:
                # Merged by another transaction between lookup and lock: retry the batch.
                raise CBrainError("profile merged concurrently", code="retry", retryable=True)
            traits = orjson.loads(self.crypto.decrypt(r["traits_enc"])) if r["traits_enc"] else {}
            self.profiles[r["id"]] = Profile(
                r["id"],
                r["created_at"],
                False,
                traits,
                {},
                r["profile_strength"],
                False,
                events=r["event_count"],
            )

    async def load_keys(self, pids: Iterable[UUID]) -> None:
        want = [p for p in pids if not self.profiles[p].keys_loaded and not self.profiles[p].new]
        if not want:
            return
        for r in await self.conn.fetch(repo.PROFILE_IDENTIFIERS, self.brand.id, want):
            if r["status"] in ("active", "shared"):
                self.profiles[r["profile_id"]].keys.setdefault(
                    (r["kind"], bytes(r["hash"])), r["namespace"]
                )
        for p in want:
            self.profiles[p].keys_loaded = True

    # -- decisions -------------------------------------------------------------------------
    def new_profile(self, at: datetime) -> Profile:
        p = Profile(uuid7(), at, True, {}, {}, 0, True)
        self.profiles[p.id] = p
        return p

    def learn(self, p: Profile, keys: Iterable[IdKey], source: str, at: datetime) -> None:
        per_kind: dict[str, int] = {}
        for kind, _ in p.keys:
            per_kind[kind] = per_kind.get(kind, 0) + 1
        for k in keys:
            if not k.usable:
                continue
            if k.ref in self.owner:
                self._link(k.ref, p.id)
                continue
            if per_kind.get(k.kind, 0) >= MAX_PER_KIND:
                continue
            per_kind[k.kind] = per_kind.get(k.kind, 0) + 1
            ns = (k.value or "").split(":", 1)[0] if k.kind == "external" else ""
            self.owner[k.ref] = p.id
            self.status[k.ref] = "active"
            p.keys[k.ref] = ns
            p.strength += k.rank
            p.strength_dirty = True
            self.new_ids.append((k, p.id, source, at))

    def holders(self, ref: tuple[str, bytes]) -> set[UUID]:
        out = {self.live(p) for p in self.links.get(ref, ())}
        if ref in self.owner:
            out.add(self.live(self.owner[ref]))
        return out

    def _link(self, ref: tuple[str, bytes], pid: UUID) -> None:
        """Record that `pid` presented a value another profile owns (one claim more)."""
        if self.status.get(ref) == "shared" or pid in self.holders(ref):
            return
        if len(self.holders(ref)) > self.cfg.shared_threshold:
            return
        self.links.setdefault(ref, set()).add(pid)
        self.new_links.append((ref, pid))
        self.claims[ref] = self.claims.get(ref, 0) + 1
        if len(self.holders(ref)) > self.cfg.shared_threshold:
            self.status[ref] = "shared"

    def absorb_traits(self, p: Profile, ev: dict[str, Any], *, authoritative: bool) -> None:
        """Newer values win, except names: a name typed at a till or shown on WhatsApp only
        fills a gap; the name a customer gave with their own email or account replaces it."""
        traits = ev.get("traits") or {}
        changed = False
        for name in _TRAIT_KEYS:
            value = traits.get(name)
            if name in ("first_name", "last_name") and p.traits.get(name) and not authoritative:
                continue
            if value not in (None, "") and p.traits.get(name) != value:
                if name in ("address", "postcode"):
                    p.address_dirty = True
                p.traits[name] = value
                changed = True
        for name in _CONSENT_KEYS:
            if traits.get(name) is not None and p.consent.get(name) != traits[name]:
                p.consent[name] = traits[name]
                changed = True
        if changed:
            p.traits_dirty = True

    async def resolve(
        self, ev: dict[str, Any], keys: list[IdKey], order_owner: UUID | None
    ) -> UUID:
        at: datetime = ev["_occurred_at"]
        usable = [k for k in keys if k.usable]
        cands: dict[UUID, list[IdKey]] = {}
        for k in usable:
            if self.status.get(k.ref) == "shared":
                continue
            for holder in self.holders(k.ref):
                cands.setdefault(holder, []).append(k)
        if not cands and order_owner is not None:
            cands[self.live(order_owner)] = []
        await self.load_profiles(cands)
        # Guard on household-shareable identifiers (a phone, a loyalty card): a profile found
        # only through one is dropped when the first names clearly differ, or when it holds
        # another loyalty card than the one this event carries (another member's card).
        shareable = [
            p for p, via in cands.items() if via and all(k.kind in NAME_CHECKED for k in via)
        ]
        cards = {k.ref for k in usable if k.kind == "loyalty_id"}
        if shareable and cards:
            await self.load_keys(shareable)
        for pid in shareable:
            prof = self.profiles[pid]
            other_card = cards and any(
                kind == "loyalty_id" and (kind, h) not in cards for kind, h in prof.keys
            )
            if other_card or _names_conflict(prof.traits, ev.get("traits") or {}):
                del cands[pid]
        strong = {p: v for p, v in cands.items() if not v or any(k.rank >= 2 for k in v)}
        weak = {p: v for p, v in cands.items() if p not in strong}
        if not strong and weak and any(k.rank >= 2 for k in usable):
            # The event names someone (an email, a phone...) that no profile holds yet, and
            # only a device or cookie points elsewhere: a known person on a shared device is
            # someone else; an anonymous one is this person, still unnamed.
            await self.load_keys(weak)
            for pid in [p for p in weak if self.profiles[p].known]:
                del weak[pid]
            if weak:
                target = self.profiles[self._primary(weak)]
                others = {p: v for p, v in weak.items() if p != target.id}
                if others:
                    target = await self._stitch_anonymous(target, others, usable)
                weak = {}
            else:
                target = self.new_profile(at)
        elif not strong and not weak:
            target = self.new_profile(at)
        elif not strong:
            target = await self._anonymous_target(weak, at)
        elif len(strong) == 1:
            target = self.profiles[next(iter(strong))]
        else:
            target = await self._several(ev, strong, usable)
        if weak and strong:
            target = await self._stitch_anonymous(target, weak, usable)
        self.learn(target, usable, ev["source"], at)
        self.absorb_traits(
            target, ev, authoritative=any(k.kind in ("email", "external") for k in usable)
        )
        return target.id

    async def _anonymous_target(self, weak: dict[UUID, list[IdKey]], at: datetime) -> Profile:
        """An event with only a device or cookie. One holder: that profile. Several known
        people behind the same device (a family tablet): nobody in particular, so the
        device's anonymous profile (made once, then reused) rather than whoever used it first."""
        if len(weak) == 1:
            return self.profiles[next(iter(weak))]
        await self.load_keys(weak)
        anonymous = [p for p in weak if not self.profiles[p].known]
        if anonymous:
            return self.profiles[min(anonymous, key=lambda p: self.profiles[p].created_at)]
        return self.new_profile(at)

    def _primary(self, cands: dict[UUID, list[IdKey]]) -> UUID:
        def rank(pid: UUID) -> tuple[int, datetime]:
            kinds = [KIND_PRIORITY.get(k.kind, 9) for k in cands[pid]] or [9]
            return (min(kinds), self.profiles[pid].created_at)

        return min(cands, key=rank)

    async def _stitch_anonymous(
        self, target: Profile, weak: dict[UUID, list[IdKey]], usable: list[IdKey]
    ) -> Profile:
        """Merge the anonymous profiles behind the event's device or cookie into `target`; the
        profile that survives is the one returned.

        An anonymous profile has no strong identifier to weigh against `target`'s, so
        "strongest then oldest" says nothing useful here; the survivor is the profile that
        already holds more of the person's events (their browsing history keeps its id when
        they identify), `target` on a tie. Either id keeps resolving through `merged_into`.
        """
        await self.load_keys(weak)
        for pid in sorted(weak):
            if pid == target.id:
                continue
            other = self.profiles[pid]
            if other.known:
                continue  # a family tablet: the link recorded by `learn` counts the claim
            survivor, loser = (other, target) if other.events > target.events else (target, other)
            await self._merge(
                survivor.id,
                [loser.id],
                1.0,
                {"anonymous_stitch": 1.0},
                "anonymous profile stitched on identification",
            )
            target = survivor
        return target

    async def _several(
        self, ev: dict[str, Any], strong: dict[UUID, list[IdKey]], usable: list[IdKey]
    ) -> Profile:
        pids = sorted(
            strong, key=lambda p: (-self.profiles[p].strength, self.profiles[p].created_at)
        )
        primary = self.profiles[self._primary(strong)]
        await self.load_keys(pids)
        model = self.cfg.model
        event_side = Profile(
            primary.id,
            primary.created_at,
            False,
            {
                **primary.traits,
                **{k: v for k, v in (ev.get("traits") or {}).items() if v not in (None, "")},
            },
            dict(primary.keys),
            0,
            True,
        )
        worst = None
        conflict = False
        for pid in pids:
            if pid == primary.id:
                continue
            other = self.profiles[pid]
            a = event_side.entity(usable)
            b = other.entity()
            feats = compare(a, b)
            result = model.score(feats)
            # Only a different date of birth is a hard conflict here. Two ids of one platform
            # are not: people open a second account with a second email all the time, and the
            # score already counts the disagreement against the pair.
            conflict = conflict or dob_level(a.dob, b.dob) == "other"
            if worst is None or result.probability < worst[1].probability:
                worst = (feats, result)
        assert worst is not None
        feats, result = worst
        decision = model.decide(result, feats, conflict=conflict, n_profiles=len(pids))
        rejected = await self.conn.fetch(
            repo.REJECTED_PAIRS, self.brand.id, [merge_ops.pair_key(pids)]
        )
        if rejected and decision.action != "no_merge":
            # A person said no (or rolled the merge back): never again automatically, and
            # only proposed again on new evidence.
            evidence = _evidence(usable)
            if any(r["evidence_hash"] in ("", evidence) for r in rejected):
                return primary
            decision = type(decision)("review", "previously rejected; new evidence")
        if decision.action == "auto_merge":
            survivor = pids[0]
            losers = [p for p in pids if p != survivor]
            await self._merge(
                survivor,
                losers,
                result.probability,
                result.contributions,
                decision.reason,
                _levels(feats),
            )
            return self.profiles[survivor]
        if decision.action == "review":
            await self._review(
                pids,
                result.probability,
                result.contributions,
                decision.reason,
                usable,
                _levels(feats),
            )
        return primary

    async def _review(
        self,
        pids: list[UUID],
        score: float,
        contributions: dict[str, float],
        reason: str,
        usable: list[IdKey],
        features: dict[str, Any],
    ) -> None:
        await self.flush_new()
        pair_key = ",".join(sorted(str(p) for p in pids))
        evidence = _evidence(usable)
        row = await self.conn.fetchval(
            repo.INSERT_REVIEW,
            self.brand.id,
            sorted(pids),
            pair_key,
            score,
            contributions,
            reason,
            evidence,
            features,
        )
        if row is not None:
            self.res.reviews += 1

    async def _merge(
        self,
        survivor: UUID,
        losers: list[UUID],
        score: float,
        contributions: dict[str, float],
        reason: str,
        features: dict[str, Any] | None = None,
    ) -> None:
        await self.flush_new()
        await merge_ops.merge(
            self.conn,
            self.crypto,
            self.brand.id,
            survivor,
            losers,
            score=score,
            contributions=contributions,
            reason=reason,
            decided_by="auto",
            features=features,
        )
        surv = self.profiles[survivor]
        for pid in losers:
            lost = self.profiles.pop(pid)
            self.redirect[pid] = survivor
            for ref, ns in lost.keys.items():
                self.owner[ref] = survivor
                surv.keys[ref] = ns
            surv.strength += lost.strength
            surv.strength_dirty = True
            surv.events += lost.events
            for k, v in lost.traits.items():
                surv.traits.setdefault(k, v)
        for ref, pid in list(self.owner.items()):
            if pid in self.redirect:
                self.owner[ref] = self.live(pid)
        for ref, held in self.links.items():
            moved = {self.live(x) for x in held}
            moved.discard(self.live(self.owner[ref]) if ref in self.owner else None)
            self.links[ref] = moved
        self.res.merges += 1
        self.res.recompute_ids.add(survivor)
        self.res.merged_events.append(
            {"survivor": str(survivor), "merged": ",".join(str(p) for p in losers)}
        )

    # -- writes ----------------------------------------------------------------------------
    async def flush_new(self) -> None:
        """Insert the profiles and identifiers created so far (merges need them in the DB)."""
        fresh = [p for p in self.profiles.values() if p.new]
        if fresh:
            await self.conn.execute(
                repo.INSERT_PROFILES,
                self.brand.id,
                [p.id for p in fresh],
                [p.created_at for p in fresh],
                [name_norm(p.traits) for p in fresh],
                [self._seal_traits(p) for p in fresh],
                [p.traits.get("city") for p in fresh],
                [p.traits.get("country") for p in fresh],
                [min(p.strength, 32000) for p in fresh],
                [p.consent for p in fresh],
            )
            for p in fresh:
                p.new = False
                p.traits_dirty = False
                p.strength_dirty = False
                p.keys_loaded = True
        if self.new_ids:
            rows = self.new_ids
            await self.conn.execute(
                repo.INSERT_IDENTIFIERS,
                self.brand.id,
                [k.kind for k, *_ in rows],
                [k.hash for k, *_ in rows],
                [self.live(pid) for _, pid, *_ in rows],
                [self.crypto.encrypt(k.value or "") for k, *_ in rows],
                [_masked(k) for k, *_ in rows],
                [src for *_, src, _ in rows],
                [
                    (k.value or "").split(":", 1)[0] if k.kind == "external" else ""
                    for k, *_ in rows
                ],
                [at for *_, at in rows],
            )
            self.new_ids = []

    def _household_members(self) -> list[tuple[str, bytes, UUID]]:
        """Link (never merge) people sharing a home address, or a household phone and a
        surname. A store's phone shared by strangers has no common surname."""
        members: list[tuple[str, bytes, UUID]] = []
        for p in self.profiles.values():
            if p.address_dirty:
                p.address_dirty = False
                key = households.address_key(self.crypto, p.traits)
                if key is not None:
                    members.append(("address", key, p.id))
        for ref, pid in self.new_links:
            owner = self.owner.get(ref)
            if ref[0] != "phone" or owner is None or self.status.get(ref) == "shared":
                continue
            a, b = self.profiles.get(self.live(owner)), self.profiles.get(self.live(pid))
            if (
                a is not None
                and b is not None
                and a.id != b.id
                and households.same_surname(a.traits, b.traits)
            ):
                members += [("phone", ref[1], a.id), ("phone", ref[1], b.id)]
        return members

    def _seal_traits(self, p: Profile) -> bytes | None:
        return self.crypto.encrypt(orjson.dumps(p.traits)) if p.traits else None

    async def finish(self) -> None:
        members = self._household_members()
        await self.flush_new()
        dirty = [p for p in self.profiles.values() if p.traits_dirty]
        if dirty:
            await self.conn.execute(
                repo.UPDATE_TRAITS,
                self.brand.id,
                [p.id for p in dirty],
                [self._seal_traits(p) for p in dirty],
                [name_norm(p.traits) for p in dirty],
                [p.traits.get("city") for p in dirty],
                [p.traits.get("country") for p in dirty],
                [p.consent for p in dirty],
            )
        strengths = [p for p in self.profiles.values() if p.strength_dirty]
        if strengths:
            await self.conn.execute(
                repo.UPDATE_STRENGTH,
                self.brand.id,
                [p.id for p in strengths],
                [p.strength for p in strengths],
            )
        if self.new_links:
            rows = [
                (ref, self.live(pid))
                for ref, pid in self.new_links
                if self.owner.get(ref) is None or self.live(self.owner[ref]) != self.live(pid)
            ]
            await self.conn.execute(
                repo.INSERT_LINKS,
                self.brand.id,
                [r[0][0] for r in rows],
                [r[0][1] for r in rows],
                [r[1] for r in rows],
            )
            self.new_links = []
        if self.claims:
            refs = sorted(self.claims)
            await self.conn.execute(
                repo.UPDATE_CLAIMS,
                self.brand.id,
                [k for k, _ in refs],
                [h for _, h in refs],
                self.cfg.shared_threshold,
                [self.claims[r] for r in refs],
            )
        await households.link(self.conn, self.brand.id, members)


def _levels(feats: Any) -> dict[str, Any]:
    """The comparison levels (and value frequencies) of a scored pair: the label store."""
    return {"levels": dict(feats.levels), "freq": dict(feats.freq)}


def _evidence(keys: list[IdKey]) -> str:
    return hashlib.sha256(b"".join(sorted(k.hash for k in keys))).hexdigest()[:32]


def _masked(k: IdKey) -> str:
    if k.kind == "external":
        ns, _, rest = (k.value or "").partition(":")
        return f"{ns}:{mask('id', rest)}"
    return mask(k.kind, k.value or "")


def _deferred(
    events: list[dict[str, Any]],
    per_event: list[list[IdKey]],
    is_busy: Callable[[tuple[str, bytes]], bool],
) -> set[int]:
    """Events carrying a busy identifier, and the events of their orders (a refund without
    identifiers follows its purchase, so it must not be decided before it)."""
    out = {i for i, keys in enumerate(per_event) if any(is_busy(k.ref) for k in keys)}
    orders = {str(oid) for i in out if (oid := (events[i].get("properties") or {}).get("order_id"))}
    if orders:
        out |= {
            i
            for i, ev in enumerate(events)
            if (oid := (ev.get("properties") or {}).get("order_id")) is not None
            and str(oid) in orders
        }
    return out


async def resolve_batch(
    conn: asyncpg.Connection,
    crypto: BrandCrypto,
    brand: Brand,
    events: list[dict[str, Any]],
    *,
    defer_busy: bool = False,
) -> Resolution:
    """Decide a profile for every event (None: suppressed). Runs inside the caller's
    transaction; the caller inserts the events, then calls `apply_aggregates`.

    With `defer_busy`, identifier locks are tried rather than waited for: an event carrying an
    identifier that another transaction holds is left undecided (its index in `deferred`, its
    profile None), with the follow-ups of its order, for the caller to resolve again once that
    transaction is done. Two workers then resolve the disjoint parts of their batches side by
    side instead of one waiting for the other's whole transaction. Resolution does not depend
    on the order of events (tests/identity: any order, same partition), so this is safe."""
    cfg = IdentityConfig.of(brand)
    batch = _Batch(conn, crypto, brand, cfg)
    per_event = [
        identifier_keys(
            crypto,
            ev.get("identifiers") or {},
            region=cfg.region,
            provider_rules=cfg.provider_rules,
            blocklist=cfg.blocklist,
        )
        for ev in events
    ]
    refs = sorted({k.ref for keys in per_event for k in keys})
    lock_name = {ref: f"{ref[0]}:{ref[1].hex()}" for ref in refs}
    # Suppressions are read under the identifier locks a privacy delete also takes, so an
    # event racing a delete cannot re-create the person.
    deferred: set[int] = set()
    if defer_busy:
        busy = await repo.try_lock_keys(conn, brand.id, list(lock_name.values()))
        if busy:
            deferred = _deferred(events, per_event, lambda ref: lock_name[ref] in busy)
            refs = sorted(
                {k.ref for i, keys in enumerate(per_event) if i not in deferred for k in keys}
            )
    else:
        await repo.lock_keys(conn, brand.id, list(lock_name.values()))
    batch.res.deferred = deferred
    blocked = await repo.suppressed(conn, brand.id, refs)
    for r in await repo.lookup(conn, brand.id, [r for r in refs if r not in blocked]):
        ref = (r["kind"], bytes(r["hash"]))
        batch.owner[ref] = r["profile_id"]
        batch.status[ref] = r["status"]
    for r in await repo.lookup_links(conn, brand.id, [r for r in refs if r not in blocked]):
        batch.links.setdefault((r["kind"], bytes(r["hash"])), set()).add(r["profile_id"])
    # Owners are always live: a merge moves the losers' identifiers to the survivor in the same
    # transaction, and `load_profiles` refuses (retry) a profile merged since the lookup.
    # Refunds and other order follow-ups with no identifiers belong to the order's buyer.
    orphan_orders = sorted(
        {
            str((ev.get("properties") or {}).get("order_id"))
            for i, (ev, keys) in enumerate(zip(events, per_event, strict=True))
            if i not in deferred
            and not any(k.usable for k in keys)
            and (ev.get("properties") or {}).get("order_id")
        }
    )
    order_owner: dict[str, UUID] = {}
    if orphan_orders:
        for r in await conn.fetch(repo.ORDER_OWNERS, brand.id, orphan_orders):
            order_owner[r["order_id"]] = r["profile_id"]
        follow = await repo.follow_merged(conn, brand.id, sorted(set(order_owner.values())))
        order_owner = {o: follow.get(p, p) for o, p in order_owner.items()}
    linked = {p for held in batch.links.values() for p in held}
    more = await repo.follow_merged(conn, brand.id, sorted(linked))
    batch.links = {ref: {more.get(p, p) for p in held} for ref, held in batch.links.items()}
    known = sorted(
        set(batch.owner.values())
        | set(order_owner.values())
        | {p for held in batch.links.values() for p in held}
    )
    await batch.load_profiles(known)
    # Their identifiers too, in one statement: the household guard, anonymous stitching and
    # scoring read them, and loading them per event cost a round trip per event.
    await batch.load_keys(known)
    in_batch_orders: dict[str, UUID] = {}
    assigned: list[UUID | None] = []
    for i, (ev, keys) in enumerate(zip(events, per_event, strict=True)):
        if i in deferred or any(k.ref in blocked for k in keys):
            assigned.append(None)
            continue
        order_id = (ev.get("properties") or {}).get("order_id")
        owner = None
        if order_id and not any(k.usable for k in keys):
            owner = in_batch_orders.get(str(order_id)) or order_owner.get(str(order_id))
        pid = await batch.resolve(ev, keys, owner)
        if order_id and ev.get("type") in ("purchase", "checkout_start"):
            in_batch_orders.setdefault(str(order_id), pid)
        assigned.append(pid)
    await batch.finish()
    batch.res.profile_ids = [None if p is None else batch.live(p) for p in assigned]
    batch.res.final = {p: batch.live(p) for p in batch.redirect}
    return batch.res
