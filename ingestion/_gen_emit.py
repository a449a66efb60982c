"""Turns simulated touches into canonical events plus the raw deliveries each source would send.

The canonical event beside each raw delivery is what our adapter in `integrations/` makes of
that delivery (same event id, identifiers, traits and totals), so importing `events.jsonl`
and replaying the raw deliveries tell the same story:

- Shopify `orders/create` -> `order:{id}`; `refunds/create` -> `refund:{id}` (no identifiers:
  identity links it through `properties.order_id`); `customers/create` ->
  `customer:{id}:{updated_at}`;
- WooCommerce `order.created` -> `order:{id}`; `order.updated` carrying one refund ->
  `refund:{refunds[0].id}` (the adapter also re-derives `order:{id}`, a duplicate);
- Twilio WhatsApp inbound -> `MessageSid`;
- POS bill -> `{store_id}:{bill_number}`, a return -> `{store_id}:{bill_number}:refund`.

One deliberate difference: items always carry the master catalog `product_id` and category
(`catalog.csv` maps WooCommerce's own product ids), so models see one id per product.
Refund totals are positive amounts refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestion._gen_catalog import Catalog, Product
from ingestion._gen_data import MOBILE_PREFIXES
from ingestion._gen_noise import (
    PHONE_STYLES,
    email_typo,
    format_phone,
    name_variant,
    postcode_variant,
    street_variant,
    typo,
)
from ingestion._gen_people import Person, Store
from ingestion._gen_rand import Clock, Rand
from integrations.pos import split_card_name

Line = tuple[int, int]  # (product index, quantity)
Row = tuple[Product, int, int]  # (product, quantity, line item id)
Record = tuple[int, int, dict[str, Any], str | None, dict[str, Any] | None]


@dataclass(slots=True)
class OrderRef:
    """What a later refund (or WhatsApp follow-up) needs to know about an emitted order."""

    source: str
    order_id: int
    name: str
    ts: int
    rows: list[Row]
    shipping: float
    identifiers: dict[str, Any]
    traits: dict[str, Any]
    payload: dict[str, Any]  # WooCommerce: the order (re-sent on update); POS: the customer
    store: int = -1


def money(x: float) -> str:
    return f"{x:.2f}"


class BaseEmitter:
    """Builds one person's events into `records`; `take()` hands them over in time order.

    This part covers our own web events, the tills and WhatsApp; the web-store platforms
    (Shopify, WooCommerce) are added by `ingestion._gen_webstore.Emitter`.
    """

    def __init__(
        self,
        brand: str,
        domain: str,
        clock: Clock,
        rand: Rand,
        catalog: Catalog,
        stores: list[Store],
    ) -> None:
        self.brand = brand
        self.domain = domain
        self.site = f"https://www.{domain}"
        self.clock = clock
        self.rand = rand
        self.catalog = catalog
        self.stores = stores
        self.lo, self.hi = clock.lo, clock.hi
        self.account_sid = "AC" + rand.hex(16)
        self.wa_number = f"+44{rand.pick(MOBILE_PREFIXES)}{rand.below(10_000_000):07d}"
        self.bill_seq = [rand.below(50_000) for _ in stores]
        self.records: list[Record] = []
        self._seq = 0

    # -- plumbing --------------------------------------------------------------------------

    def take(self) -> list[Record]:
        """This person's records in time order (ties keep creation order)."""
        out = sorted(self.records, key=lambda r: (r[0], r[1]))
        self.records = []
        self._seq = 0
        return out

    def in_window(self, ts: int) -> bool:
        return self.lo <= ts < self.hi

    def push(
        self,
        ts: int,
        event_id: str,
        source: str,
        type_: str,
        identifiers: dict[str, Any],
        traits: dict[str, Any] | None,
        properties: dict[str, Any] | None,
        raw_source: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        ev: dict[str, Any] = {
            "event_id": event_id,
            "brand": self.brand,
            "source": source,
            "type": type_,
            "occurred_at": self.clock.z(ts),
            "identifiers": identifiers,
        }
        if traits:
            ev["traits"] = traits
        if properties:
            ev["properties"] = properties
        self.records.append((ts, self._seq, ev, raw_source, raw))
        self._seq += 1

    @staticmethod
    def items(rows: list[Row]) -> list[dict[str, Any]]:
        return [p.item if q == 1 else {**p.item, "quantity": q} for p, q, _ in rows]

    # -- how people write themselves down ----------------------------------------------------

    def phone_as_typed(self, e164: str, area_len: int) -> str:
        return format_phone(e164, area_len, self.rand.below(PHONE_STYLES))

    def names(self, p: Person) -> tuple[str, str]:
        """The name on one order: now and then a nickname or a typo."""
        r = self.rand
        x = r.u()
        if x < 0.04:
            return name_variant(p.first, r), p.last
        if x < 0.06:
            return p.first, typo(p.last, r)
        return p.first, p.last

    def web_email(self, p: Person) -> str:
        """The email typed at checkout: the second address now and then, rarely a typo."""
        r = self.rand
        email = p.alt_email if p.alt_email and r.chance(0.35) else p.email
        return email_typo(email, r) if r.chance(0.02) else email

    def address(self, p: Person) -> tuple[str, str]:
        a = p.hh.address
        r = self.rand
        line1 = street_variant(a.line1, r) if r.chance(0.04) else a.line1
        return line1, postcode_variant(a.postcode, r) if r.chance(0.2) else a.postcode

    def typed_phone(self, p: Person, p_give: float) -> str | None:
        """The phone a shopper types at checkout: usually their mobile, sometimes the landline."""
        r = self.rand
        if not r.chance(p_give):
            return None
        hh = p.hh
        if hh.landline and (p.mobile is None or r.chance(0.1)):
            return self.phone_as_typed(hh.landline, hh.landline_area)
        return self.phone_as_typed(p.mobile, 4) if p.mobile else None

    # -- web (our own pixel / POST /v1/events) ----------------------------------------------

    def web(
        self,
        ts: int,
        type_: str,
        device: str,
        cookie: str,
        properties: dict[str, Any],
        *,
        email: str | None = None,
        external: dict[str, str] | None = None,
        traits: dict[str, Any] | None = None,
        phone: str | None = None,
    ) -> None:
        if not self.in_window(ts):
            return
        ids: dict[str, Any] = {"device_id": device, "cookie_id": cookie}
        if email:
            ids["email"] = email
        if phone:
            ids["phone"] = phone
        if external:
            ids["external_ids"] = external
        self.push(ts, self.rand.uuid(), "web", type_, ids, traits, properties)

    # -- POS -------------------------------------------------------------------------------

    def _store_phone(self, store: Store) -> str:
        return format_phone(store.phone, store.area_len, self.rand.below(3))

    def _pos_customer(self, p: Person, store: Store) -> dict[str, Any]:
        """Who the till thinks the shopper is."""
        r = self.rand
        c: dict[str, Any] = {}
        x = r.u()
        if p.mobile and x < 0.55:
            c["phone"] = self.phone_as_typed(p.mobile, 4)
        elif x < 0.63:
            c["phone"] = self._store_phone(store)  # typed when a shopper won't give theirs
        elif x < 0.67 and p.hh.landline:
            c["phone"] = self.phone_as_typed(p.hh.landline, p.hh.landline_area)
        elif x < 0.68:
            c["phone"] = "0000000000"
        if p.loyalty and r.chance(0.85):
            c["loyalty_id"] = p.loyalty
        pay = r.u()
        if pay < 0.86:  # card or wallet; the rest pay cash
            last4, card_name = p.cards[0] if len(p.cards) == 1 or r.chance(0.7) else p.cards[1]
            c["card_last4"] = last4
            if pay < 0.75:  # wallets (Apple Pay, Google Pay) hand the till no name
                c["card_name"] = card_name
        if r.chance(0.3):
            c["first_name"], c["last_name"] = self.names(p)
        e = r.u()
        if e < 0.15:
            c["email"] = email_typo(p.email, r) if r.chance(0.03) else p.email
        elif e < 0.175:
            c["email"] = f"noemail@{self.domain}"
        elif e < 0.185:
            c["email"] = "test@test.com"
        if not ("phone" in c or "loyalty_id" in c or "email" in c):
            c["phone"] = self._store_phone(store)  # the till insists on a contact
        return c

    def _bill_number(self, store_idx: int, ts: int) -> str:
        self.bill_seq[store_idx] += 1
        day = self.clock.naive(ts)
        till = 1 + self.rand.below(4)
        return f"{day[2:4]}{day[5:7]}{day[8:10]}-{till}-{self.bill_seq[store_idx]:06d}"

    def _pos_push(self, ts: int, raw: dict[str, Any], properties: dict[str, Any]) -> None:
        cust = raw["customer"]
        ids = {k: cust[k] for k in ("email", "phone", "loyalty_id") if k in cust}
        card_first, card_last = split_card_name(cust.get("card_name"))
        traits = {
            "first_name": cust.get("first_name") or card_first,
            "last_name": cust.get("last_name") or card_last,
            "card_last4": cust.get("card_last4"),
        }
        traits = {k: v for k, v in traits.items() if v}
        event_id = f"{raw['store_id']}:{raw['bill_number']}"
        type_ = raw["kind"]
        if type_ == "refund":
            event_id += ":refund"
        self.push(ts, event_id, "pos", type_, ids, traits, properties, "pos", raw)

    def pos_bill(self, p: Person, ts: int, lines: list[Line]) -> OrderRef | None:
        if not self.in_window(ts):
            return None
        store = self.stores[p.store]
        bill = self._bill_number(p.store, ts)
        cust = self._pos_customer(p, store)
        rows = [(self.catalog.products[pid], q, k) for k, (pid, q) in enumerate(lines)]
        total = round(sum(pr.price * q for pr, q, _ in rows), 2)
        items = self.items(rows)
        raw = {
            "store_id": store.store_id,
            "bill_number": bill,
            "kind": "purchase",
            "occurred_at": self.clock.z(ts),
            "total": total,
            "currency": "GBP",
            "items": items,
            "customer": cust,
        }
        props = {
            "order_id": bill,
            "store_id": store.store_id,
            "total": total,
            "currency": "GBP",
            "items": items,
        }
        self._pos_push(ts, raw, props)
        return OrderRef("pos", 0, bill, ts, rows, 0.0, {}, {}, cust, p.store)

    def pos_return(self, ref: OrderRef, ts: int, rows: list[Row], amount: float) -> None:
        """A return at the same shop; the till copies the sale's customer onto it."""
        store = self.stores[ref.store]
        bill = self._bill_number(ref.store, ts)
        items = self.items(rows)
        raw = {
            "store_id": store.store_id,
            "bill_number": bill,
            "kind": "refund",
            "original_bill_number": ref.name,
            "occurred_at": self.clock.z(ts),
            "total": -amount,
            "currency": "GBP",
            "items": items,
            "customer": dict(ref.payload),
        }
        props = {
            "order_id": bill,
            "store_id": store.store_id,
            "total": amount,
            "currency": "GBP",
            "items": items,
            "original_order_id": ref.name,
        }
        self._pos_push(ts, raw, props)

    # -- WhatsApp via Twilio ---------------------------------------------------------------

    def whatsapp(self, p: Person, ts: int, body: str, media: bool = False) -> None:
        if not self.in_window(ts) or not p.mobile:
            return
        r = self.rand
        sid = "SM" + r.hex(16)
        sender = f"whatsapp:{p.mobile}"
        to = f"whatsapp:{self.wa_number}"
        form = {
            "SmsMessageSid": sid,
            "NumMedia": "1" if media else "0",
            "ProfileName": p.profile_name,
            "MessageType": "image" if media else "text",
            "SmsSid": sid,
            "WaId": p.mobile[1:],
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        props: dict[str, Any] = {
            "message_sid": sid,
            "text": body,
            "num_media": int(media),
            "to": to,
        }
        if media:
            base = f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
            form["MediaUrl0"] = f"{base}/Messages/{sid}/Media/ME{r.hex(16)}"
            form["MediaContentType0"] = "image/jpeg"
            props["media"] = [{"url": form["MediaUrl0"], "content_type": "image/jpeg"}]
        # The display name splits at the first space, as the adapter reads it.
        first, _, rest = p.profile_name.partition(" ")
        traits = {"first_name": first}
        if rest.strip():
            traits["last_name"] = rest.strip()
        raw = {"received_at": self.clock.z(ts), "form": form}
        ids = {"whatsapp": sender}
        self.push(ts, sid, "whatsapp", "message_in", ids, traits, props, "twilio", raw)
