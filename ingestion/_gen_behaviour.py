"""One person's life with the brand: purchases, baskets, web sessions, refunds and chats.

Purchases are a seasonal Poisson process at the person's own rate, and after each purchase
the person drops out with their own probability (BG/NBD). The process runs 90 days past the
window so the truth file can say what each person really did next.
"""

from __future__ import annotations

import math

import numpy as np

from ingestion._gen_catalog import Catalog
from ingestion._gen_data import WA_GENERAL, WA_ORDER, WA_PRODUCT
from ingestion._gen_emit import Line, OrderRef
from ingestion._gen_people import Person
from ingestion._gen_rand import CHAT_HOURS, DAY, POS_HOURS, WEB_HOURS, Clock, Rand, time_in_day
from ingestion._gen_webstore import Emitter

_PAGES = ("/", "/", "/", "/pages/about", "/pages/stores", "/blogs/journal", "/pages/delivery")


class Simulator:
    """Runs one person at a time through the emitter."""

    def __init__(
        self, gen: np.random.Generator, rand: Rand, clock: Clock, catalog: Catalog, emit: Emitter
    ) -> None:
        self.gen = gen
        self.rand = rand
        self.clock = clock
        self.catalog = catalog
        self.emit = emit
        season = clock.seasonality()
        self.season = season.tolist()
        self.fmax = float(season.max())
        self.pre = clock.pre_days
        self.horizon = clock.sim_days + clock.post_days  # simulation runs to here (days)
        self.win_lo = clock.lo / DAY
        self.win_hi = clock.hi / DAY
        self.cat_handles = [
            s.name.lower().replace(" & ", "-").replace(" ", "-") for s in catalog.specs
        ]

    # -- building blocks -------------------------------------------------------------------

    def _seasonal_times(self, rate: float, start: float, stop: float) -> list[float]:
        """Event times of a Poisson process at `rate` per day, thinned by seasonality."""
        span = stop - start
        if span <= 0 or rate <= 0:
            return []
        n = int(self.gen.poisson(rate * self.fmax * span))
        if n == 0:
            return []
        times = np.sort(start + self.gen.random(n) * span)
        keep = self.gen.random(n) * self.fmax
        season, pre = self.season, self.pre
        return [
            t
            for t, k in zip(times.tolist(), keep.tolist(), strict=True)
            if k < season[math.floor(t) + pre]
        ]

    def basket(self, p: Person, day: int) -> list[Line]:
        """Due favourites first, then preferred categories up to a gamma-drawn order value."""
        r, cat = self.rand, self.catalog
        lines: dict[int, int] = {}
        subtotal = 0.0
        for pid, every in p.favourites:
            last = p.last_bought.get(pid)
            due = r.chance(0.7) if last is None else day - last >= every * 0.75 and r.chance(0.85)
            if due and pid not in lines:
                q = 2 if r.chance(0.15) else 1
                lines[pid] = q
                subtotal += cat.products[pid].price * q
                p.last_bought[pid] = day
        # Gamma-gamma: order values scatter around the person's own mean.
        target = float(self.gen.gamma(4.0, p.spend / 4.0))
        pref = p.pref_cum_gift if self.clock.in_gift_season(day) else p.pref_cum
        tries = 0
        while (subtotal < target * 0.85 or not lines) and len(lines) < 8 and tries < 12:
            tries += 1
            prod = cat.products[cat.pick_in_category(r.weighted(pref), r.u())]
            q = 2 if prod.price < 8 and r.chance(0.25) else 1
            lines[prod.idx] = lines.get(prod.idx, 0) + q
            subtotal += prod.price * q
            extra = -1
            if prod.bundle >= 0 and r.chance(0.5):
                extra = prod.bundle
            elif r.chance(0.25):
                extra = r.pick(prod.complements)
            if extra >= 0 and extra not in lines:
                lines[extra] = 1
                subtotal += cat.products[extra].price
        return list(lines.items())

    def _total(self, lines: list[Line], web: bool) -> float:
        sub = sum(self.catalog.products[pid].price * q for pid, q in lines)
        return round(sub + (3.95 if web and sub < 40 else 0.0), 2)

    def _device(self, p: Person, day: int) -> tuple[str, str]:
        """A device and its cookie; cookies expire, and the family tablet's is shared."""
        r, hh = self.rand, p.hh
        if hh.device and (not p.devices or r.chance(0.25)):
            epoch = day // 120
            cookie = hh.cookies.get(epoch)
            if cookie is None:
                cookie = hh.cookies[epoch] = r.uuid()
            return hh.device, cookie
        if not p.devices:
            p.devices.append(r.uuid())
        dev = p.devices[0] if len(p.devices) == 1 or r.chance(0.65) else p.devices[1]
        key = (dev, int(day // p.cookie_life))
        cookie = p.cookies.get(key)
        if cookie is None:
            cookie = p.cookies[key] = r.uuid()
        return dev, cookie

    def _view_props(self, pid: int) -> dict:
        prod = self.catalog.products[pid]
        return {"url": f"{self.emit.site}/products/{prod.handle}", "items": [prod.item]}

    # -- sessions --------------------------------------------------------------------------

    def browse(self, p: Person, day: int) -> None:
        """A session without a purchase: views, searches, sometimes an abandoned cart."""
        r, em, cat = self.rand, self.emit, self.catalog
        dev, cookie = self._device(p, day)
        t = time_in_day(r, day, WEB_HOURS)
        if p.has_account and p.platform == "shopify" and r.chance(0.15):
            em.identify(p, t, dev, cookie, "login")
            t += r.int_between(5, 30)
        if r.chance(0.5):
            ci = r.weighted(p.pref_cum)
            path = r.pick(_PAGES) if r.chance(0.5) else f"/collections/{self.cat_handles[ci]}"
            props = {"url": f"{em.site}{path}"}
            if r.chance(0.4):
                props["referrer"] = r.pick(
                    (
                        "https://www.google.com/",
                        "https://www.instagram.com/",
                        "https://l.facebook.com/",
                        "android-app://com.google.android.gm",
                    )
                )
            em.web(t, "page_view", dev, cookie, props)
            t += r.int_between(10, 90)
        if r.chance(0.25):
            spec = cat.specs[r.weighted(p.pref_cum)]
            em.web(
                t,
                "search",
                dev,
                cookie,
                {"query": r.pick(spec.searches), "results": r.int_between(0, 40)},
            )
            t += r.int_between(5, 40)
        viewed = -1
        for _ in range(1 + r.geometric_extra(0.55, 7)):
            if p.favourites and r.chance(0.2):
                viewed = r.pick(p.favourites)[0]
            else:
                viewed = cat.pick_in_category(r.weighted(p.pref_cum), r.u())
            em.web(t, "product_view", dev, cookie, self._view_props(viewed))
            t += r.int_between(15, 150)
        if r.chance(0.14):
            cart = f"c1-{r.hex(16)}"
            item = cat.products[viewed].item
            em.web(t, "cart_add", dev, cookie, {"cart_id": cart, "items": [item]})
            t += r.int_between(20, 200)
            if r.chance(0.12):
                em.web(t, "cart_remove", dev, cookie, {"cart_id": cart, "items": [item]})
            elif r.chance(0.35):
                # Abandoned checkout: the email is typed, so recovery flows can reach them.
                em.web(
                    t,
                    "checkout_start",
                    dev,
                    cookie,
                    {"cart_id": cart, "items": [item], "total": item["price"], "currency": "GBP"},
                    email=p.email,
                )

    def checkout(self, p: Person, ts: int, lines: list[Line], email: str, first: bool) -> None:
        """The web session that ends in an order at `ts`: views, adds, checkout start."""
        r, em, cat = self.rand, self.emit, self.catalog
        dev, cookie = self._device(p, ts // DAY)
        steps: list[tuple[str, dict]] = []
        for pid, _q in lines:
            if r.chance(0.8):
                steps.append(("product_view", self._view_props(pid)))
        cart = f"c1-{r.hex(16)}"
        items = []
        for pid, q in lines:
            item = cat.products[pid].item
            item = item if q == 1 else {**item, "quantity": q}
            items.append(item)
            steps.append(("cart_add", {"cart_id": cart, "items": [item]}))
        total = self._total(lines, web=True)
        steps.append(
            ("checkout_start", {"cart_id": cart, "items": items, "total": total, "currency": "GBP"})
        )
        gaps = [r.int_between(15, 120) for _ in steps]
        t = ts - sum(gaps) - r.int_between(60, 300)
        if p.has_account and p.platform == "shopify" and (first or r.chance(0.4)):
            em.identify(p, t - 20, dev, cookie, "signup" if first else "login")
        for (type_, props), gap in zip(steps, gaps, strict=True):
            em.web(t, type_, dev, cookie, props, email=email if type_ == "checkout_start" else None)
            t += gap

    # -- the person ------------------------------------------------------------------------

    def run(self, p: Person) -> None:
        """Simulate `p` from acquisition to the end of the truth horizon."""
        r, em = self.rand, self.emit
        lo, hi = em.lo, em.hi
        start = p.signup
        alive_until = float(self.horizon)
        purchases: list[float] = []
        if p.buyer:
            repeats = self._seasonal_times(p.lam, start, self.horizon)
            # After each purchase (the first included) the person leaves with prob p_drop.
            n_repeat = int(self.gen.geometric(p.p_drop)) - 1
            purchases = [start, *repeats[:n_repeat]]
            if n_repeat <= len(repeats):
                p.death = purchases[-1]
                alive_until = p.death
        else:
            alive_until = start + r.expo(60.0)  # a lead's interest fades

        orders: list[OrderRef] = []
        for k, t in enumerate(purchases):
            day = math.floor(t)
            pos = p.store >= 0 and r.u() < p.p_pos
            ts = time_in_day(r, day, POS_HOURS if pos else WEB_HOURS)
            if ts < lo:
                for pid, _every in p.favourites:
                    p.last_bought[pid] = day
                continue
            lines = self.basket(p, day)
            if ts >= hi:
                p.future_orders += 1
                p.future_revenue += self._total(lines, web=not pos)
                continue
            ref = self._order(p, ts, lines, pos, first=k == 0)
            if ref is None:
                continue
            p.orders += 1
            p.revenue += self._total(lines, web=not pos)
            orders.append(ref)

        for ref in orders:
            if r.chance(0.05 if ref.source != "pos" else 0.02):
                # Staff process refunds and returns in shop hours, days to weeks later.
                day = ref.ts // DAY + r.int_between(2, 21)
                em.refund(ref, time_in_day(r, day, POS_HOURS))
            if p.whatsapp and ref.source != "pos" and r.chance(0.22):
                day = ref.ts // DAY + r.int_between(1, 4)
                self._chat(p, time_in_day(r, day, CHAT_HOURS), ref)

        self._sessions(p, start, alive_until)
        if p.whatsapp:
            for t in self._seasonal_times(
                0.006, max(start, self.win_lo), min(alive_until, self.win_hi)
            ):
                self._chat(p, time_in_day(r, math.floor(t), CHAT_HOURS), None)

    def _order(
        self, p: Person, ts: int, lines: list[Line], pos: bool, first: bool
    ) -> OrderRef | None:
        em = self.emit
        if pos:
            return em.pos_bill(p, ts, lines)
        email = em.web_email(p)
        self.checkout(p, ts, lines, email, first)
        if p.platform == "woocommerce":
            return em.woo_order(p, ts, lines, email)
        return em.shopify_order(p, ts, lines, email)

    def _sessions(self, p: Person, start: float, alive_until: float) -> None:
        r, em = self.rand, self.emit
        if not p.web:
            return
        # Browsing starts a little before acquisition (anonymous cookies, linked later) and
        # fades out after the last purchase.
        begin = max(start - r.between(0.0, 14.0), self.win_lo)
        end = min(alive_until + r.expo(20.0), self.win_hi)
        for t in self._seasonal_times(p.browse, begin, end):
            self.browse(p, math.floor(t))
        if not p.buyer and self.win_lo <= start < self.win_hi:
            day = math.floor(start)
            dev, cookie = self._device(p, day)
            em.identify(p, time_in_day(r, day, WEB_HOURS), dev, cookie, "newsletter")
        elif p.store >= 0 and p.p_pos >= 1.0 and r.chance(0.3):
            day = math.floor(r.between(begin, max(begin, end)))
            if self.win_lo <= day < self.win_hi:
                dev, cookie = self._device(p, day)
                em.identify(p, time_in_day(r, day, WEB_HOURS), dev, cookie, "newsletter")

    def _chat(self, p: Person, ts: int, ref: OrderRef | None) -> None:
        """A short WhatsApp burst: about an order, a product, or something general."""
        r, cat = self.rand, self.catalog
        store = self.emit.stores[p.store] if p.store >= 0 else self.emit.stores[0]
        for k in range(1 + r.geometric_extra(0.35, 3)):
            if ref is not None and k == 0:
                body = r.pick(WA_ORDER).format(order=ref.name)
            elif r.chance(0.5):
                pid = (
                    r.pick(p.favourites)[0]
                    if p.favourites and r.chance(0.5)
                    else r.below(len(cat.products))
                )
                body = r.pick(WA_PRODUCT).format(product=cat.products[pid].title)
            else:
                body = r.pick(WA_GENERAL).format(city=p.hh.address.city, store=store.city)
            self.emit.whatsapp(p, ts, body, media=ref is not None and r.chance(0.05))
            ts += r.int_between(20, 400)
