"""Shopify, the brand's main web store, on top of every other source.

Payloads are the REST resources (Order, Refund, Customer) as Shopify sends them in webhooks;
the canonical event next to each is what `integrations.shopify` makes of it.
"""

from __future__ import annotations

from typing import Any

from ingestion._gen_catalog import Catalog
from ingestion._gen_emit import Line, OrderRef, Row, money
from ingestion._gen_people import Person, Store
from ingestion._gen_rand import Clock, Rand
from ingestion._gen_woo import REFUND_REASONS, WooEmitter

SHOPIFY_API_VERSION = "2025-10"


class Emitter(WooEmitter):
    """Every source: our web events, POS and WhatsApp, WooCommerce, and Shopify here."""

    def __init__(
        self,
        brand: str,
        domain: str,
        clock: Clock,
        rand: Rand,
        catalog: Catalog,
        stores: list[Store],
    ) -> None:
        super().__init__(brand, domain, clock, rand, catalog, stores)
        self.shop_domain = f"{domain.split('.')[0]}.myshopify.com"
        # Platform ids look like the real ones and never collide across resources.
        self.next_order = 5_810_000_000_000 + rand.below(10**9)
        self.order_number = 1000 + rand.below(9000)
        self.next_line = 13_900_000_000_000 + rand.below(10**9)
        self.next_refund = 925_000_000_000 + rand.below(10**9)
        self.next_customer = 7_302_000_000_000 + rand.below(10**9)

    # -- identify (our pixel, with the Shopify account when there is one) -------------------

    def identify(self, p: Person, ts: int, device: str, cookie: str, method: str) -> None:
        """A login, sign-up or newsletter form: the event that ties a cookie to a person."""
        if not self.in_window(ts):
            return
        r = self.rand
        external = None
        if p.has_account and p.platform == "shopify":
            external = {"shopify": str(self.shopify_customer(p, p.email, ts - 1))}
        phone = self.phone_as_typed(p.mobile, 4) if p.mobile and r.chance(0.2) else None
        first, last = self.names(p)
        traits: dict[str, Any] = {"first_name": first, "last_name": last}
        if method == "newsletter":
            traits["email_consent"] = True
        self.web(
            ts,
            "identify",
            device,
            cookie,
            {"method": method},
            email=p.email,
            external=external,
            traits=traits,
            phone=phone,
        )

    # -- Shopify ---------------------------------------------------------------------------

    def _shopify_delivery(self, topic: str, ts: int, payload: dict[str, Any]) -> dict[str, Any]:
        r = self.rand
        return {
            "topic": topic,
            "received_at": self.clock.z(ts + 1 + r.below(4)),
            "headers": {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": self.shop_domain,
                "X-Shopify-API-Version": SHOPIFY_API_VERSION,
                "X-Shopify-Webhook-Id": r.uuid(),
                "X-Shopify-Event-Id": r.uuid(),
                "X-Shopify-Triggered-At": self.clock.z(ts + 1),
            },
            "payload": payload,
        }

    def _shopify_address(
        self, p: Person, first: str, last: str, phone: str | None
    ) -> dict[str, Any]:
        line1, postcode = self.address(p)
        return {
            "first_name": first,
            "last_name": last,
            "name": f"{first} {last}",
            "address1": line1,
            "address2": None,
            "city": p.hh.address.city,
            "zip": postcode,
            "province": None,
            "country": "United Kingdom",
            "country_code": "GB",
            "phone": phone,
            "company": None,
        }

    @staticmethod
    def _traits(first: str, last: str, addr: dict[str, Any]) -> dict[str, Any]:
        return {
            "first_name": first,
            "last_name": last,
            "city": addr["city"],
            "postcode": addr["zip"],
            "country": addr["country_code"],
            "address": addr["address1"],
        }

    def shopify_customer(self, p: Person, email: str, ts: int) -> int:
        """Shopify's customer id for this email; a new one fires `customers/create`.

        Shopify keys customers by email, so a second address or a typo makes a second
        customer record for the same person, as it does in real shops.
        """
        cid = p.shopify_ids.get(email)
        if cid is not None:
            return cid
        self.next_customer += 1 + self.rand.below(900)
        cid = p.shopify_ids[email] = self.next_customer
        if not self.in_window(ts) or (p.signup * 86_400 < self.lo and email == p.email):
            return cid  # the record predates the window
        phone = p.mobile if p.mobile and self.rand.chance(0.4) else None
        addr = self._shopify_address(p, p.first, p.last, phone)
        stamp = self.clock.offset(ts)
        payload = {
            "id": cid,
            "email": email,
            "created_at": stamp,
            "updated_at": stamp,
            "first_name": p.first,
            "last_name": p.last,
            "orders_count": 0,
            "state": "enabled" if p.has_account else "disabled",
            "total_spent": "0.00",
            "last_order_id": None,
            "note": None,
            "verified_email": True,
            "tax_exempt": False,
            "phone": phone,
            "currency": "GBP",
            "addresses": [addr],
            "default_address": addr,
            "admin_graphql_api_id": f"gid://shopify/Customer/{cid}",
        }
        ids: dict[str, Any] = {"email": email, "external_ids": {"shopify": str(cid)}}
        if phone:
            ids["phone"] = phone
        traits = self._traits(p.first, p.last, addr)
        delivery = self._shopify_delivery("customers/create", ts, payload)
        self.push(
            ts,
            f"customer:{cid}:{stamp}",
            "shopify",
            "identify",
            ids,
            traits,
            None,
            "shopify",
            delivery,
        )
        return cid

    def _rows(self, lines: list[Line]) -> list[Row]:
        out = []
        for pid, q in lines:
            self.next_line += 1 + self.rand.below(20)
            out.append((self.catalog.products[pid], q, self.next_line))
        return out

    def shopify_order(self, p: Person, ts: int, lines: list[Line], email: str) -> OrderRef | None:
        if not self.in_window(ts):
            return None
        r = self.rand
        first, last = self.names(p)
        cid = self.shopify_customer(p, email, ts - 5)
        customer_phone = p.mobile if p.mobile and r.chance(0.35) else None
        billing_phone = self.typed_phone(p, 0.6)
        self.next_order += 1 + r.below(700)
        oid = self.next_order
        self.order_number += 1
        name = f"#{self.order_number}"
        rows = self._rows(lines)
        subtotal = round(sum(pr.price * q for pr, q, _ in rows), 2)
        shipping = 0.0 if subtotal >= 40 else 3.95
        total = round(subtotal + shipping, 2)
        tax = round(total - total / 1.2, 2)  # UK prices include 20% VAT
        created = self.clock.offset(ts)
        billing = self._shopify_address(p, first, last, billing_phone)
        # A few orders arrive without the customer (no protected-customer-data approval).
        customer = None
        if r.chance(0.96):
            customer = {
                "id": cid,
                "email": email,
                "first_name": first,
                "last_name": last,
                "phone": customer_phone,
            }
        payload: dict[str, Any] = {
            "id": oid,
            "admin_graphql_api_id": f"gid://shopify/Order/{oid}",
            "name": name,
            "order_number": self.order_number,
            "email": email,
            "contact_email": email,
            "phone": None,
            "created_at": created,
            "processed_at": created,
            "updated_at": created,
            "currency": "GBP",
            "presentment_currency": "GBP",
            "subtotal_price": money(subtotal),
            "total_price": money(total),
            "total_tax": money(tax),
            "total_discounts": "0.00",
            "taxes_included": True,
            "financial_status": "paid",
            "fulfillment_status": None,
            "source_name": "web",
            "buyer_accepts_marketing": r.chance(0.4),
            "customer": customer,
            "billing_address": billing,
            "shipping_address": billing,
            "shipping_lines": [{"title": "Standard", "price": money(shipping), "code": "standard"}],
            "line_items": [
                {
                    "id": li,
                    "product_id": pr.product_id,
                    "variant_id": pr.variant_id,
                    "sku": pr.sku,
                    "title": pr.title,
                    "name": pr.title,
                    "quantity": q,
                    "price": pr.price_str,
                    "product_type": pr.category,
                    "vendor": self.brand,
                }
                for pr, q, li in rows
            ],
        }
        ids: dict[str, Any] = {"email": email}
        phone = billing_phone
        if customer is not None:
            ids["external_ids"] = {"shopify": str(cid)}
            phone = customer_phone or billing_phone
        if phone:
            ids["phone"] = phone
        traits = self._traits(first, last, billing)
        props = {
            "order_id": str(oid),
            "total": total,
            "currency": "GBP",
            "items": self.items(rows),
            "order_name": name,
            "financial_status": "paid",
            "discount_total": 0.0,
        }
        delivery = self._shopify_delivery("orders/create", ts, payload)
        self.push(
            ts, f"order:{oid}", "shopify", "purchase", ids, traits, props, "shopify", delivery
        )
        return OrderRef("shopify", oid, name, ts, rows, shipping, ids, traits, payload)

    def refund(self, ref: OrderRef, ts: int) -> None:
        """Refund all or one line of an emitted order, on the channel it was bought on."""
        if not self.in_window(ts):
            return
        r = self.rand
        if len(ref.rows) == 1 or r.chance(0.5):
            rows = ref.rows
            amount = round(sum(pr.price * q for pr, q, _ in rows) + ref.shipping, 2)
        else:
            rows = [r.pick(ref.rows)]
            amount = round(sum(pr.price * q for pr, q, _ in rows), 2)
        if ref.source == "pos":
            self.pos_return(ref, ts, rows, amount)
        elif ref.source == "woocommerce":
            self.woo_refund(ref, ts, rows, amount)
        else:
            self._shopify_refund(ref, ts, rows, amount)

    def _shopify_refund(self, ref: OrderRef, ts: int, rows: list[Row], amount: float) -> None:
        r = self.rand
        self.next_refund += 1 + r.below(300)
        rid = self.next_refund
        stamp = self.clock.offset(ts)
        lines = []
        for k, (pr, q, li) in enumerate(rows):
            item = {
                "id": li,
                "product_id": pr.product_id,
                "variant_id": pr.variant_id,
                "sku": pr.sku,
                "title": pr.title,
                "quantity": q,
                "price": pr.price_str,
                "product_type": pr.category,
            }
            lines.append(
                {
                    "id": rid * 10 + k,
                    "line_item_id": li,
                    "quantity": q,
                    "restock_type": "return",
                    "subtotal": round(pr.price * q, 2),
                    "total_tax": round(pr.price * q / 6, 2),
                    "line_item": item,
                }
            )
        payload = {
            "id": rid,
            "order_id": ref.order_id,
            "created_at": stamp,
            "processed_at": stamp,
            "note": r.pick(REFUND_REASONS),
            "restock": True,
            "user_id": 8_100_000_001 + r.below(5),
            "admin_graphql_api_id": f"gid://shopify/Refund/{rid}",
            "refund_line_items": lines,
            "transactions": [
                {
                    "id": rid * 10 + 9,
                    "order_id": ref.order_id,
                    "kind": "refund",
                    "status": "success",
                    "amount": money(amount),
                    "currency": "GBP",
                    "gateway": "shopify_payments",
                }
            ],
        }
        props = {
            "order_id": str(ref.order_id),
            "refund_id": str(rid),
            "total": amount,
            "currency": "GBP",
            "items": self.items(rows),
        }
        delivery = self._shopify_delivery("refunds/create", ts, payload)
        # A Refund names only its order: no identifiers, identity links it via order_id.
        self.push(ts, f"refund:{rid}", "shopify", "refund", {}, None, props, "shopify", delivery)
