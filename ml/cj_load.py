"""`cbrain dataset load completejourney`: Dunnhumby's baskets through the real ingestion path.

Each household becomes a person with generator-style identifiers (name, email, UK mobile,
loyalty card). Its baskets are spread over channels by a per-household store share: in store
(`pos`, loyalty card + phone) or online (`shopify`, email + phone + name). The shared phone
and name are what let identity resolution join the two, as it would for a real customer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ingestion._gen_data import (
    EMAIL_DOMAINS,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    LAST_NAMES,
    MOBILE_PREFIXES,
    words,
)


def canonical_events(
    events: pd.DataFrame, *, limit_households: int | None = None, seed: int = 7
) -> list[dict[str, Any]]:
    """Canonical purchase events (dicts) from ``ml.datasets`` purchase events with items."""
    hh = pd.Index(sorted(events["profile_id"].astype(str).unique(), key=_natural))
    if limit_households is not None:
        hh = hh[:limit_households]
        events = events.loc[events["profile_id"].astype(str).isin(hh)]
    rng = np.random.default_rng(seed)
    firsts = words(FIRST_NAMES_F) + words(FIRST_NAMES_M)
    lasts = words(LAST_NAMES)
    prefixes = MOBILE_PREFIXES
    doms = [d for d, _ in EMAIL_DOMAINS]
    w = np.array([x for _, x in EMAIL_DOMAINS], float)
    people: dict[str, dict[str, Any]] = {}
    for i, h in enumerate(hh):
        first, last = firsts[rng.integers(len(firsts))], lasts[rng.integers(len(lasts))]
        people[h] = {
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}{i}@{doms[rng.choice(len(doms), p=w / w.sum())]}".lower(),
            "phone": f"+44{prefixes[rng.integers(len(prefixes))]}{(i * 7919 + 3_571_113) % 10_000_000:07d}",
            "loyalty_id": f"CJ{int(i):07d}",
            "store_share": float(rng.beta(4, 1.5)),
        }
    out = []
    u = rng.random(len(events))
    for (_, e), r in zip(events.iterrows(), u, strict=True):
        p = people[str(e["profile_id"])]
        in_store = r < p["store_share"]
        ident = (
            {"loyalty_id": p["loyalty_id"], "phone": p["phone"]}
            if in_store
            else {"email": p["email"], "phone": p["phone"]}
        )
        items = [
            {k: (float(v) if isinstance(v, np.floating) else v) for k, v in it.items()}
            for it in (e["items"] or [])
        ]
        doc: dict[str, Any] = {
            "event_id": f"cj:{e['order_id']}",
            "source": "pos" if in_store else "shopify",
            "type": "purchase",
            "occurred_at": pd.Timestamp(e["occurred_at"]).isoformat(),
            "identifiers": ident,
            "properties": {
                "order_id": str(e["order_id"]),
                "total": float(e["total"]),
                "currency": "USD",
                "items": items,
            },
        }
        # The card and the online account are both registered in the household's name.
        doc["traits"] = {"first_name": p["first_name"], "last_name": p["last_name"]}
        if in_store and e.get("store_id") is not None:
            doc["properties"]["store_id"] = str(e["store_id"])
        out.append(doc)
    return out


def _natural(x: str) -> tuple[int, str]:
    return (int(x), x) if x.isdigit() else (1 << 62, x)


async def load(
    rt: Any,
    brand: Any,
    *,
    limit_households: int | None = None,
    seed: int = 7,
    progress: Callable[[float], None] | None = None,
) -> dict[str, int]:
    """Load Complete Journey into ``brand`` via `import_lines` (inbox + resolution)."""
    from ingestion.csv_import import ImportSpec, import_lines
    from ml.datasets import load_complete_journey

    ds = load_complete_journey(with_items=True)
    docs = canonical_events(ds.events, limit_households=limit_households, seed=seed)
    lines = [orjson.dumps(d).decode() for d in docs]
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done / max(len(lines), 1))

    spec = ImportSpec.build(source="api", event_type=None, fmt="jsonl", mappings=[])
    rep = await import_lines(rt, brand.id, brand.slug, lines, spec, progress=tick)
    return {
        "households": len({d["identifiers"]["phone"] for d in docs}),
        "events": len(docs),
        "accepted": rep.accepted,
        "processed": rep.processed,
    }
