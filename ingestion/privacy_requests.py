"""Privacy requests arriving through ingestion (Shopify's mandatory compliance topics) are
recorded as deletion/export jobs holding only keyed hashes of the identifiers they name."""

from __future__ import annotations

from typing import Any

import asyncpg

from core.brands import Brand
from core.events import Identifiers
from core.runtime import Runtime

INSERT_REQUEST = """
INSERT INTO deletion_requests (brand_id, kind, requested_by, identifier_hashes, summary)
VALUES ($1, $2, $3, $4, $5) RETURNING id"""


async def record_shopify(conn: asyncpg.Connection, rt: Runtime, brand: Brand, req: Any) -> Any:
    from identity.keys import identifier_keys

    ids = Identifiers(
        email=req.email,
        phone=req.phone,
        external_ids={"shopify": req.customer_id} if req.customer_id else {},
    )
    crypto = rt.keyring.for_brand(str(brand.id))
    hashes = [
        {"kind": k.kind, "hash": k.hash.hex()}
        for k in identifier_keys(crypto, ids, region=brand.region)
        if k.usable or k.kind in ("email", "phone", "external")
    ]
    summary = {
        "topic": req.topic,
        "shop_domain": req.shop_domain,
        "order_count": len(req.order_ids),
        "data_request_id": req.data_request_id,
    }
    return await conn.fetchval(
        INSERT_REQUEST, brand.id, req.kind, f"shopify:{req.webhook_id}", hashes, summary
    )
