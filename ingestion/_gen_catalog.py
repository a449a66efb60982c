"""The synthetic product catalog: categories, prices, popularity skew and co-purchase links."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingestion._gen_data import BUNDLES, GIFT_SEASON_BOOST, CategorySpec, categories
from ingestion._gen_rand import cumulative


@dataclass(slots=True)
class Product:
    idx: int
    product_id: int  # Shopify-style id; the brand's master catalog id in every canonical event
    variant_id: int
    woo_id: int  # the same product's id in the WooCommerce store
    sku: str
    title: str
    category: str
    cat_idx: int
    price: float
    price_str: str
    handle: str
    repeat_days: int  # typical days between re-orders; 0 when it is not a consumable
    bundle: int = -1  # a product bought with this one far more often than chance
    complements: list[int] = field(default_factory=list)
    item: dict[str, Any] = field(default_factory=dict)  # canonical item template, quantity 1


@dataclass(slots=True)
class Catalog:
    products: list[Product]
    specs: tuple[CategorySpec, ...]
    cat_products: list[list[int]]
    cat_cum: list[list[float]]  # cumulative Zipf popularity inside each category
    cat_weight: np.ndarray  # category popularity, normalised
    gift_boost: np.ndarray  # per-category multiplier in November and December
    repeatables: list[list[int]]  # consumables per category: candidates for favourites

    def pick_in_category(self, cat: int, u: float) -> int:
        cum = self.cat_cum[cat]
        lo, hi, x = 0, len(cum) - 1, u * cum[-1]
        while lo < hi:  # inline bisect: this runs for every basket line
            mid = (lo + hi) // 2
            if cum[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return self.cat_products[cat][lo]


def _price(rng: np.random.Generator, lo: float, hi: float, mult: float) -> float:
    # Log-uniform inside the category range, then a UK-style price ending (.00 .50 .95 .99).
    base = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * mult
    whole = max(1, round(base))
    ending = (0.0, 0.5, -0.05, -0.01)[int(rng.integers(4))]
    return round(max(0.99, whole + ending), 2)


def _handle(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def build_catalog(rng: np.random.Generator) -> Catalog:
    """~300-420 products over 16 categories with Zipf popularity, bundles and complements."""
    specs = categories()
    products: list[Product] = []
    cat_products: list[list[int]] = []
    next_pid = 8_104_000_000_000 + int(rng.integers(1_000_000))
    next_woo = 120 + int(rng.integers(80))
    for ci, spec in enumerate(specs):
        base_price: dict[str, float] = {}
        for entry in spec.bases:
            name, _, pinned = entry.partition("@")
            base_price[name] = (
                float(pinned) if pinned else _price(rng, spec.price_lo, spec.price_hi, 1)
            )
        combos = [(b, v, m) for b in base_price for v, m in spec.variants]
        # Drop a random tenth of combinations so catalogs differ between seeds.
        keep = rng.random(len(combos)) > 0.1
        keep[0] = True
        members: list[int] = []
        for (base, variant, mult), kept in zip(combos, keep, strict=True):
            if not kept:
                continue
            title = f"{base} {variant}".strip()
            bp = base_price[base]
            price = bp if mult == 1 else _price(rng, bp, bp, mult)
            next_pid += 1 + int(rng.integers(40))
            next_woo += 1 + int(rng.integers(3))
            idx = len(products)
            sku = f"{spec.code}-{idx:04d}"
            p = Product(
                idx=idx,
                product_id=next_pid,
                variant_id=41_000_000_000_000 + next_pid % 10**12,
                woo_id=next_woo,
                sku=sku,
                title=title,
                category=spec.name,
                cat_idx=ci,
                price=price,
                price_str=f"{price:.2f}",
                handle=_handle(title),
                repeat_days=spec.repeat_days,
            )
            p.item = {
                "product_id": str(p.product_id),
                "sku": sku,
                "name": title,
                "category": spec.name,
                "price": price,
                "quantity": 1,
            }
            products.append(p)
            members.append(idx)
        cat_products.append(members)

    # Zipf-ish popularity inside each category: a random product is the hero, then a long tail.
    cat_cum: list[list[float]] = []
    for members in cat_products:
        ranks = rng.permutation(len(members)) + 1
        cat_cum.append(cumulative(1.0 / ranks**1.1))

    names = [s.name for s in specs]
    weight = np.array([s.weight for s in specs], dtype=float)
    cat_weight = weight / weight.sum()
    gift_boost = np.array([GIFT_SEASON_BOOST.get(n, 1.0) for n in names])
    repeatables = [[i for i in m if products[i].repeat_days] for m in cat_products]
    catalog = Catalog(products, specs, cat_products, cat_cum, cat_weight, gift_boost, repeatables)
    _link(catalog, rng, names)
    return catalog


def _link(catalog: Catalog, rng: np.random.Generator, names: list[str]) -> None:
    """Give every product a bundle partner (if one fits) and three complementary products."""
    products = catalog.products
    for a_frag, b_frag in BUNDLES:
        a_side = [p for p in products if a_frag in p.title]
        b_side = [p for p in products if b_frag in p.title]
        if not a_side or not b_side:
            continue
        for p in a_side:
            p.bundle = b_side[int(rng.integers(len(b_side)))].idx
        for p in b_side:
            if p.bundle < 0 and rng.random() < 0.3:
                p.bundle = a_side[int(rng.integers(len(a_side)))].idx
    for p in products:
        spec = catalog.specs[p.cat_idx]
        comp_cats = [names.index(c) for c in spec.complements if c in names]
        for _ in range(3):
            ci = comp_cats[int(rng.integers(len(comp_cats)))] if comp_cats else p.cat_idx
            p.complements.append(catalog.pick_in_category(ci, float(rng.random())))
