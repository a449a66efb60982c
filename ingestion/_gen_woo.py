"""WooCommerce, the brand's second storefront: REST v3 orders as its webhooks send them.

The canonical event next to each delivery is what `integrations.woocommerce` makes of it.
"""

from __future__ import annotations

from typing import Any

from ingestion._gen_catalog import Catalog
from ingestion._gen_emit import BaseEmitter, Line, OrderRef, Row, money
from ingestion._gen_people import Person, Store
from ingestion._gen_rand import Clock, Rand

WOO_VERSION = "9.4.2"
REFUND_REASONS = ("damaged", "wrong item", "changed mind", "not as described", "arrived late")


class WooEmitter(BaseEmitter):
    """Adds the WooCommerce storefront to the base sources."""

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
        self.next_woo = 24_000 + rand.below(5000)  # orders and refunds share WordPress post ids
        self.next_woo_line = 800 + rand.below(500)

    def _woo_rows(self, lines: list[Line]) -> list[Row]:
        out = []
        for pid, q in lines:
            self.next_woo_line += 1
            out.append((self.catalog.products[pid], q, self.next_woo_line))
        return out

    # -- WooCommerce -----------------------------------------------------------------------

    def _woo_delivery(self, topic: str, ts: int, payload: dict[str, Any]) -> dict[str, Any]:
        resource, event = topic.split(".")
        return {
            "topic": topic,
            "received_at": self.clock.z(ts + 1 + self.rand.below(3)),
            "headers": {
                "Content-Type": "application/json",
                "User-Agent": f"WooCommerce/{WOO_VERSION} Hookshot (WordPress/6.7.1)",
                "X-WC-Webhook-Source": f"{self.site}/",
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Resource": resource,
                "X-WC-Webhook-Event": event,
                "X-WC-Webhook-ID": "3",
                "X-WC-Webhook-Delivery-ID": self.rand.hex(16),
            },
            "payload": payload,
        }

    def woo_order(self, p: Person, ts: int, lines: list[Line], email: str) -> OrderRef | None:
        if not self.in_window(ts):
            return None
        r = self.rand
        first, last = self.names(p)
        phone = self.typed_phone(p, 0.9) or ""  # WooCommerce asks for a phone by default
        line1, postcode = self.address(p)
        city = p.hh.address.city
        self.next_woo += 1 + r.below(4)
        oid = self.next_woo
        rows = self._woo_rows(lines)
        subtotal = round(sum(pr.price * q for pr, q, _ in rows), 2)
        shipping = 0.0 if subtotal >= 40 else 3.95
        total = round(subtotal + shipping, 2)
        tax = round(total - total / 1.2, 2)
        created = self.clock.naive(ts)
        customer_id = p.woo_customer if email == p.email else 0  # 0: guest checkout
        address = {
            "first_name": first,
            "last_name": last,
            "company": "",
            "address_1": line1,
            "address_2": "",
            "city": city,
            "state": "",
            "postcode": postcode,
            "country": "GB",
        }
        payload: dict[str, Any] = {
            "id": oid,
            "parent_id": 0,
            "number": str(oid),
            "order_key": f"wc_order_{r.hex(7)[:13]}",
            "created_via": "checkout",
            "version": WOO_VERSION,
            "status": "processing",
            "currency": "GBP",
            "date_created": created,
            "date_created_gmt": created,
            "date_modified": created,
            "date_modified_gmt": created,
            "discount_total": "0.00",
            "shipping_total": money(shipping),
            "total": money(total),
            "total_tax": money(tax),
            "prices_include_tax": True,
            "customer_id": customer_id,
            "customer_note": "",
            "billing": {**address, "email": email, "phone": phone},
            "shipping": {**address, "phone": phone},
            "payment_method": "stripe",
            "payment_method_title": "Credit / Debit Card",
            "transaction_id": f"pi_{r.hex(12)}",
            "date_paid_gmt": created,
            "line_items": [
                {
                    "id": li,
                    "name": pr.title,
                    "product_id": pr.woo_id,
                    "variation_id": 0,
                    "quantity": q,
                    "tax_class": "",
                    "subtotal": money(pr.price * q),
                    "total": money(pr.price * q),
                    "sku": pr.sku,
                    "price": pr.price,
                }
                for pr, q, li in rows
            ],
            "shipping_lines": [
                {"id": oid * 10, "method_title": "Standard", "total": money(shipping)}
            ],
            "refunds": [],
        }
        ids: dict[str, Any] = {"email": email}
        if phone:
            ids["phone"] = phone
        if customer_id:
            ids["external_ids"] = {"woocommerce": str(customer_id)}
        traits = {
            "first_name": first,
            "last_name": last,
            "city": city,
            "postcode": postcode,
            "country": "GB",
            "address": line1,
        }
        props = {
            "order_id": str(oid),
            "total": total,
            "currency": "GBP",
            "items": self.items(rows),
            "order_number": str(oid),
            "status": "processing",
            "discount_total": 0.0,
        }
        delivery = self._woo_delivery("order.created", ts, payload)
        self.push(
            ts,
            f"order:{oid}",
            "woocommerce",
            "purchase",
            ids,
            traits,
            props,
            "woocommerce",
            delivery,
        )
        return OrderRef("woocommerce", oid, f"#{oid}", ts, rows, shipping, ids, traits, payload)

    def woo_refund(self, ref: OrderRef, ts: int, rows: list[Row], amount: float) -> None:
        # WooCommerce has no refund topic: the order comes again on order.updated, listing it.
        self.next_woo += 1 + self.rand.below(4)
        rid = self.next_woo
        modified = self.clock.naive(ts)
        reason = self.rand.pick(REFUND_REASONS)
        payload = {
            **ref.payload,
            "status": "refunded" if len(rows) == len(ref.rows) else ref.payload["status"],
            "date_modified": modified,
            "date_modified_gmt": modified,
            "refunds": [{"id": rid, "reason": reason, "total": money(-amount)}],
        }
        props = {
            "order_id": str(ref.order_id),
            "refund_id": str(rid),
            "total": amount,
            "currency": "GBP",
        }
        delivery = self._woo_delivery("order.updated", ts, payload)
        self.push(
            ts,
            f"refund:{rid}",
            "woocommerce",
            "refund",
            ref.identifiers,
            ref.traits,
            props,
            "woocommerce",
            delivery,
        )
