"""Offline mode: a deterministic planner for when there is no ANTHROPIC_API_KEY (or Claude is
unreachable). Intent rules, plus fuzzy matching (rapidfuzz) over example phrases and the
tools' own descriptions, map a question to the same MCP tools Claude would use; arguments
(customer, segments, metric and horizon, goal and size, N, period, product) are extracted
from the question. `offline.answer` runs the plan and renders it.

Only the staff member's question is planned; customer-written text (ctx.untrusted) is never
mined for tools or arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from assistant.safety import clean
from assistant.types import AskContext
from ml.names import RFM_SEGMENTS

SEGMENTS = (*RFM_SEGMENTS, "Prospects")
# Generic words that are also segment names: only capitalised, they name the segment.
_CASED_SEGMENTS = {"New", "Loyal", "Lost", "Promising", "At Risk", "Champions"}

EXAMPLES: dict[str, list[str]] = {
    "lookup_customer": [
        "who is this customer",
        "tell me about this customer",
        "customer profile and order history",
        "where is my order",
        "refund status for customer",
        "what did they buy last",
    ],
    "churn_risk": [
        "which customers are at risk of churning",
        "who is likely to stop buying",
        "customers we are about to lose",
        "churn risk of this customer",
    ],
    "segments": ["what segments do we have", "list our customer segments", "segment sizes"],
    "analyze_segments": [
        "compare segments side by side",
        "how did customers move between segments",
        "segment migration over the last quarter",
    ],
    "recommendations": [
        "what should I recommend to this customer",
        "which products to suggest",
        "next best product for her",
    ],
    "similar_customers": [
        "customers similar to this one",
        "lookalike customers",
        "people like her",
    ],
    "analyze_customers": [
        "how many customers do we have",
        "revenue by country",
        "average order value and repeat rate",
        "sales last month",
        "customers per city",
    ],
    "analyze_products": [
        "best selling products",
        "top categories by revenue",
        "products frequently bought together",
        "what sells best",
    ],
    "analyze_behavior": [
        "channel mix of our buyers",
        "how often do customers buy again",
        "cohort retention curves",
        "conversion funnel from view to purchase",
    ],
    "forecast_metrics": [
        "forecast revenue for the next weeks",
        "how many orders will we get next month",
        "projected sales",
    ],
    "target_campaign": [
        "build a win-back campaign audience",
        "who should we target for an upsell campaign",
        "audience for a VIP retention offer",
    ],
}

_EMAIL = re.compile(r"[\w.+%'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])(?:\+|00)?\d[\d \-().]{6,18}\d(?![\w])")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_EXTERNAL = re.compile(r"\b(shopify|woocommerce|woo|pos|gorgias|stripe):\s?([\w-]{1,60})\b", re.I)
_LOYALTY = re.compile(
    r"\b(?:loyalty(?: id| number| card)?\s*#?:?\s*)([A-Z0-9][\w-]{3,30})\b|\b(LOY[-_]?\d[\w-]{2,20})\b"
)
_PRODUCT = re.compile(r"\bproduct(?:_id| id)?\s*[:#]?\s*([a-z0-9][\w-]*\d[\w-]*)\b", re.I)
_NAME = re.compile(
    r"\b(?:for|about|to|of|is|like|named|called|customer|client|buyer|offer|recommend|"
    r"suggest|email|contact|message|call|text|with)\s+"
    r"((?:[A-Z][a-z'’-]+|[A-Z]\.)(?:\s+(?:[A-Z][a-z'’-]+|van|de|da|von|O'[A-Z][a-z]+)){1,2})\b"
)
_NOT_NAMES = {
    "Champions",
    "Loyal",
    "New",
    "Lost",
    "Slack",
    "Gorgias",
    "Shopify",
    "Claude",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Black",
    "Christmas",
    "Easter",
    "VIP",
    "VIPs",
    "Need",
    "At",
    "Potential",
    "About",
    "Can't",
    "Hibernating",
    "Promising",
    "Prospects",
}
_NUM_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "fifty": 50,
    "hundred": 100,
    "a": 1,
    "a couple of": 2,
    "few": 3,
}
_NUM = r"(\d+|" + "|".join(sorted(_NUM_WORDS, key=len, reverse=True)) + r")"


def _num(word: str) -> int:
    return int(word) if word.isdigit() else _NUM_WORDS.get(word.lower(), 1)


@dataclass
class Slots:
    customer: str | None = None
    customer_kind: str | None = None
    segments: list[str] = field(default_factory=list)
    metric: str | None = None
    horizon_weeks: int | None = None
    period_days: int | None = None
    goal: str | None = None
    size: int | None = None
    budget: float | None = None
    top_n: int | None = None
    group_by: str | None = None
    product_id: str | None = None
    category: str | None = None


@dataclass
class Step:
    tool: str
    args: dict[str, Any]


@dataclass
class Plan:
    steps: list[Step]
    intent: str
    slots: Slots
    missing: str | None = None  # what the user must add ("a customer") when nothing can run
    matched_by: str = "rule"


# Phrases read in order, the first that matches wins: (pattern, value).
_HORIZONS: tuple[tuple[str, int], ...] = (
    (r"\bnext (quarter|three months)\b", 13),
    (r"\bnext month\b|\bcoming month\b", 4),
    (r"\bnext week\b", 1),
    (r"\b(half[- ]year|six months|6 months)\b", 26),
)
_PERIODS: tuple[tuple[str, int], ...] = (
    (r"\b(this|last|past) month\b", 30),
    (r"\b(this|last|past) (quarter)\b", 90),
    (r"\b(this|last|past) year\b|\bytd\b|year to date", 365),
    (r"\b(this|last|past) week\b", 7),
)
_GOALS: tuple[tuple[str, str], ...] = (
    (r"win[- ]?back|re-?engag|reactivat|lapsed|dormant|come back", "win_back"),
    (r"cross[- ]?sell", "cross_sell"),
    (r"up[- ]?sell|upgrade|spend more", "upsell"),
    (r"\bvips?\b|retain|retention offer|best customers|keep our", "retain_vips"),
)


def _first(text: str, rules: tuple[tuple[str, Any], ...]) -> Any:
    """The value of the first rule whose pattern occurs in `text`, else None."""
    return next((value for pattern, value in rules if re.search(pattern, text)), None)


def extract(question: str) -> Slots:
    """Arguments found in the question's text."""
    q = clean(question)
    s = Slots()
    if m := _PRODUCT.search(q):
        s.product_id = m.group(1)
        q = q[: m.start(1)] + q[m.end(1) :]  # a numeric product id is not a phone number
    elif m := re.search(r"\b(?:sku|product)\s+([A-Z0-9]{2,}[-_][\w-]+)\b", q):
        s.product_id = m.group(1)
        q = q[: m.start(1)] + q[m.end(1) :]
    if m := _EMAIL.search(q):
        s.customer, s.customer_kind = m.group(0).strip(".'"), "email"
    elif m := _UUID.search(q):
        s.customer, s.customer_kind = m.group(0), "customer_ref"
    elif m := _EXTERNAL.search(q):
        s.customer, s.customer_kind = f"{m.group(1).lower()}:{m.group(2)}", "external_id"
    elif m := _LOYALTY.search(q):
        s.customer, s.customer_kind = (m.group(1) or m.group(2)), "loyalty_id"
    else:
        for m in _PHONE.finditer(q):
            digits = sum(c.isdigit() for c in m.group(0))
            if 7 <= digits <= 15 and not re.fullmatch(r"\d{4}(-\d{2}){0,2}", m.group(0)):
                s.customer, s.customer_kind = m.group(0).strip(), "phone"
                break
        else:
            for m in _NAME.finditer(q):
                words = m.group(1).split()
                if not any(w in _NOT_NAMES for w in words):
                    s.customer, s.customer_kind = m.group(1), "name"
                    break
    low = q.casefold()
    for seg in SEGMENTS:
        if seg in _CASED_SEGMENTS:
            hit = re.search(rf"\b{re.escape(seg)}\b", q)
            # "Loyal"/"New"/"Lost" starting a sentence are ordinary words.
            if hit and not (hit.start() == 0 and seg in {"New", "Lost", "Loyal"}):
                s.segments.append(seg)
        elif re.search(rf"\b{re.escape(seg.casefold())}\b", low.replace("cant", "can't")):
            s.segments.append(seg)
    if "At Risk" in s.segments and re.search(r"\b(are|is|be|at)\s+At Risk\b", q):
        s.segments.remove("At Risk")  # "who is At Risk" reads as the state, not the segment
    if re.search(r"\b(orders?|transactions?|order volume|purchases)\b", low) and not re.search(
        r"\b(revenue|sales|turnover|gmv|income)\b", low
    ):
        s.metric = "orders"
    elif re.search(
        r"\b(active customers|buyers|shoppers|active users|customers will|customer count)\b", low
    ) and not re.search(r"\b(revenue|sales)\b", low):
        s.metric = "active_customers"
    elif re.search(r"\b(revenue|sales|turnover|gmv|income|takings)\b", low):
        s.metric = "revenue"
    if m := re.search(
        rf"\b(?:next|coming|following|upcoming)\s+{_NUM}\s+(weeks?|months?|quarters?|days?)\b", low
    ):
        n, unit = _num(m.group(1)), m.group(2)
        weeks = {"w": n, "m": round(n * 4.35), "q": 13 * n, "d": max(1, round(n / 7))}[unit[0]]
        s.horizon_weeks = max(1, min(26, weeks))
    elif (weeks := _first(low, _HORIZONS)) is not None:
        s.horizon_weeks = weeks
    if m := re.search(
        rf"\b(?:last|past|previous|recent)\s+{_NUM}\s+(days?|weeks?|months?|years?)\b", low
    ):
        n, unit = _num(m.group(1)), m.group(2)[0]
        s.period_days = min(1095, n * {"d": 1, "w": 7, "m": 30, "y": 365}[unit])
    elif (days := _first(low, _PERIODS)) is not None:
        s.period_days = days
    if (goal := _first(low, _GOALS)) is not None:
        s.goal = goal
    m = re.search(r"(?:budget of|budget|spend|with)\s*[£$€]?\s?(\d[\d,]*(?:\.\d+)?)\s*(k\b)?", low)
    if m and ("budget" in m.group(0) or re.search(r"[£$€]", m.group(0))):
        s.budget = float(m.group(1).replace(",", "")) * (1000 if m.group(2) else 1)
    if m := re.search(rf"\b(?:top|first|best|worst|biggest|largest)\s+{_NUM}\b", low):
        s.top_n = _num(m.group(1))
    if m := re.search(
        r"\b(\d{1,5})\s+(?:[a-z-]+\s+)?(?:customers|people|contacts|members|buyers|shoppers)\b", low
    ):
        s.size = int(m.group(1))
        s.top_n = s.top_n or int(m.group(1))
    if m := re.search(
        r"\b(?:by|per|across|each|which|top|group(?:ed)? by)\s+(channels?|countr(?:y|ies)|cit(?:y|ies)|cohorts?|segments?|first[- ]order month)\b",
        low,
    ):
        word = m.group(1)
        s.group_by = (
            "channel"
            if word.startswith("channel")
            else "country"
            if word.startswith("countr")
            else "city"
            if word.startswith("cit")
            else "segment"
            if word.startswith("segment")
            else "cohort"
        )
    if m := re.search(
        r"\bin (?:the )?([a-z][a-z &]{2,30}) category\b|\bcategory ([a-z][a-z &]{2,30})\b", low
    ):
        s.category = (m.group(1) or m.group(2)).strip()
    return s


def _has(low: str, pattern: str) -> bool:
    return re.search(pattern, low) is not None


_CHURN = r"churn|\bat[- ]risk\b|likely to (leave|lapse|stop|churn|go)|about to (leave|lapse|churn)|(lapsing|slipping|drifting)( away)?|\blos(e|ing) (them|customers|her|him)|stop(ped)? buying|won'?t (come back|return|buy)|risk of leaving|retention risk"
_RECOMMEND = r"recommend|suggest|what (should|could|can|would) (i|we) (offer|sell|pitch|show|send)|next[- ]best|upsell (to|for)|cross[- ]sell (to|for)|what (else )?(would|might|will) (she|he|they) (like|buy|want)|which products? (for|to offer)|who (would|might|should|will) (buy|want|like)|interested in|offer .* to"
_SIMILAR = r"similar|look[- ]?alike|(shop|shops|buy|buys) like|\b(customers|people|shoppers|buyers|ones) like\b|resembl|\btwins?\b"
_FORECAST = r"forecast|predict(ed|ion)?s? (revenue|sales|orders|customers)|projection|project(ed)? |outlook|\bwill (revenue|sales|orders|we (sell|make|get))|how (much|many) .* (will|next)|expect(ed)? (revenue|sales|orders)|next \d+ (weeks?|months?)|(revenue|sales|orders|customers) (trend|trending)|trending|going forward|coming (weeks|months)|going to (look|be)|over the next|projected"
_CAMPAIGN = r"campaign|audience|\btarget(ing)?\b|win[- ]?back|who should (we|i) (email|contact|send|text|message|reach|call)|re-?engag|reactivat|mailing list|retention offer|retain (our )?(vips?|best)|cross[- ]sell campaign|upsell campaign|promo(tion)? list"
_SEG_COMPARE = r"compar|\bvs\.?\b|versus|differ|side by side|\bmov(e|ed|ing|ement)\b|migrat|shift(ed)? (between|from)|transition|flow|changed segment|segment changes|from .* to .* segment"
_SEGMENTS = r"segment|rfm"
_PRODUCTS = r"products?|best[- ]?sell|top[- ]?sell|categor|\bskus?\b|\bitems?\b|bought together|basket|bundle|affinit|also buy|what sells|merchandise|catalog"
_BEHAVIOR = r"channel mix|which channels|omni-?channel|multi-?channel|online and in[- ]?store|in[- ]?store and online|both channels|came back|come back|cadence|how often|how frequently|purchase frequency|time between|days between|repurchase|cohort|retention (curve|rate)|retain after|come back after|funnel|conversion|convert|drop[- ]?off|journey|cart abandon|abandon|checkout|stages?"
_CUSTOMERS = r"how many (customers|buyers|people|shoppers)|number of (customers|buyers)|customer (count|base)|revenue|sales|turnover|\baov\b|average order|order value|basket size|repeat rate|lifetime value|spend|buyers|new customers|by (country|city|cohort|segment|channel)|top (cities|countries)|where (are|do) our customers|how are we doing|kpis?|overview|total orders"
_LOOKUP = r"who is|tell me about|profile|history|order|refund|return|deliver|shipping|parcel|package|tracking|where is|status|account|contact|vip\b|last (purchase|order|bought)|bought|purchas|ticket|complain|summary|360|details|info"


def plan(question: str, ctx: AskContext | None = None, allowed: set[str] | None = None) -> Plan:
    """The tools (and arguments) a question needs. Pure: no I/O."""
    s = extract(question)
    q = clean(question)
    # Segment names removed before the keyword rules ("At Risk", "Can't Lose Them").
    low = q
    for seg in s.segments:
        low = re.sub(re.escape(seg), " ", low, flags=re.I)
    low = low.casefold()
    if ctx is not None and ctx.customer_ref and not s.customer:
        s.customer, s.customer_kind = ctx.customer_ref, "pinned"
    steps: list[Step] = []
    intent = ""
    cust = s.customer

    def one(tool: str, **args: Any) -> None:
        steps.append(Step(tool, {k: v for k, v in args.items() if v is not None}))

    if cust:
        wants = []
        if _has(low, _SIMILAR):
            wants.append("similar_customers")
        if _has(low, _CHURN):
            wants.append("churn_risk")
        if _has(low, _RECOMMEND) or _has(
            low, r"upsell|cross[- ]sell|what to offer|products? (would|might|to)"
        ):
            wants.append("recommendations")
        summary = _has(low, r"summar|brief|overview|profile|tell me about|who is|\b360\b|history")
        if summary:
            wants = []  # a summary: lookup_customer already carries churn and recommendations
        if wants:
            intent = "+".join(wants)
            for tool in wants:
                if tool == "similar_customers":
                    one(tool, customer=cust, limit=min(s.top_n or 10, 25))
                elif tool == "churn_risk":
                    one(tool, customer=cust)
                else:
                    one(tool, customer=cust, limit=min(s.top_n or 5, 50))
        elif s.customer_kind != "pinned" or summary or not _analytics(low, s)[0]:
            intent = "lookup_customer"
            by = {
                "email": "email",
                "phone": "phone",
                "customer_ref": "profile_id",
                "external_id": "external_id",
                "loyalty_id": "loyalty_id",
                "name": "name",
            }.get(s.customer_kind or "", "auto")
            one("lookup_customer", query=cust, by=by if s.customer_kind != "pinned" else None)
    if not steps:
        intent, steps, missing = _analytics(low, s)
        if intent:
            return _finish(Plan(steps, intent, s, missing), allowed)
        best = _fuzzy(q, allowed)
        if best is None:
            return Plan([], "help", s)
        tool, _score = best
        if tool in ("similar_customers", "recommendations", "lookup_customer") and not cust:
            return _finish(
                Plan(
                    [],
                    tool,
                    s,
                    "a customer (email, phone, loyalty id, name or customer_ref)",
                    "fuzzy",
                ),
                allowed,
            )
        intent, steps, missing = _analytics(tool.replace("_", " ") + " " + low, s, force=tool)
        return _finish(Plan(steps, intent, s, missing, "fuzzy"), allowed)
    return _finish(Plan(steps, intent, s), allowed)


def _analytics(low: str, s: Slots, force: str | None = None) -> tuple[str, list[Step], str | None]:
    """Brand-level intents, most specific first."""

    def step(tool: str, **args: Any) -> tuple[str, list[Step], str | None]:
        return tool, [Step(tool, {k: v for k, v in args.items() if v is not None})], None

    def is_(tool: str, pattern: str) -> bool:
        return force == tool if force else _has(low, pattern)

    if is_("similar_customers", _SIMILAR):
        return (
            "similar_customers",
            [],
            "a customer to compare with (email, phone, name or customer_ref)",
        )
    if is_("target_campaign", _CAMPAIGN) or (
        not force
        and s.goal in ("win_back", "upsell", "cross_sell")
        and _has(low, r"who|which customers|list|send|email")
    ):
        size = s.size or s.top_n
        return step(
            "target_campaign",
            goal=s.goal or "win_back",
            size=None if s.budget else size,
            budget=s.budget,
        )
    if is_("forecast_metrics", _FORECAST):
        return step(
            "forecast_metrics",
            metric=s.metric or "revenue",
            horizon_weeks=s.horizon_weeks or 8,
            interval=95 if "95" in low else None,
        )
    if is_("churn_risk", _CHURN) and not (
        force is None and _has(low, _SEG_COMPARE) and len(s.segments) >= 2
    ):
        vip = _has(
            low,
            r"\bvips?\b|valuable|value at risk|revenue at risk|how much (revenue|money|value|spend)|high[- ]value|big spenders|best customers|most to lose|money",
        )
        seg = next((x for x in s.segments if x != "At Risk"), None) or (
            s.segments[0] if s.segments else None
        )
        return step(
            "churn_risk",
            segment=seg,
            top_n=min(s.top_n or 10, 100),
            rank_by="value_at_risk" if vip else None,
        )
    if is_("recommendations", _RECOMMEND) and s.product_id:
        return step("recommendations", product_id=s.product_id, limit=min(s.top_n or 10, 50))
    if is_("recommendations", _RECOMMEND) and force:
        return "recommendations", [], "a customer or a product_id"
    if (is_("analyze_segments", _SEG_COMPARE) and (s.segments or _has(low, _SEGMENTS))) or (
        not force and len(s.segments) >= 2
    ):
        days = s.period_days if _has(low, r"\bmov|migrat|shift|transition|flow|chang") else None
        return step("analyze_segments", segments=s.segments or None, movement_days=days)
    if (
        not force
        and s.group_by
        and _has(low, r"revenue|sales|orders|spend|customers|aov|order value")
    ):
        seg = s.segments[0] if s.segments and s.group_by != "segment" else None
        return step(
            "analyze_customers", group_by=s.group_by, period_days=s.period_days, segment=seg
        )
    if is_("segments", _SEGMENTS) or (not force and s.segments and not _has(low, _CUSTOMERS)):
        return step("segments")
    funnel = r"channel mix|which channels|funnel|cohort|drop[- ]?off|conver|abandon"
    if is_("analyze_products", _PRODUCTS) and not (force is None and _has(low, funnel)):
        view = (
            "category_affinity"
            if _has(low, r"affinit|also buy|cross[- ]category")
            or (_has(low, r"categor") and _has(low, r"together|same customers|across orders"))
            else "bought_together"
            if _has(low, r"together|basket|bundle|same order|pairs?")
            else "top_categories"
            if _has(low, r"categor")
            else "top_products"
        )
        sort_by = (
            "units"
            if _has(low, r"units|volume|quantity|most sold")
            else "buyers"
            if _has(low, r"buyers|most people|popular")
            else None
        )
        return step(
            "analyze_products",
            view=view,
            period_days=s.period_days,
            sort_by=sort_by,
            category=s.category,
            limit=min(s.top_n or 10, 50),
        )
    if is_("analyze_behavior", _BEHAVIOR):
        view = (
            "cohort_retention"
            if _has(low, r"cohort|retention|retain|come back after")
            else "journey_funnel"
            if _has(low, r"funnel|conver|drop|journey|cart|checkout|abandon|stage")
            else "purchase_cadence"
            if _has(low, r"cadence|how often|frequen|time between|days between|repurchase|again")
            else "channel_mix"
        )
        months = None
        if view == "cohort_retention" and s.period_days:
            months = max(2, min(24, s.period_days // 30))
        return step(
            "analyze_behavior",
            view=view,
            period_days=s.period_days if view in ("channel_mix", "journey_funnel") else None,
            months=months,
        )
    if is_("analyze_customers", _CUSTOMERS):
        seg = s.segments[0] if s.segments and s.group_by != "segment" else None
        return step(
            "analyze_customers", group_by=s.group_by, period_days=s.period_days, segment=seg
        )
    return "", [], None


def _fuzzy(q: str, allowed: set[str] | None) -> tuple[str, float] | None:
    choices = [
        (tool, ex) for tool, exs in EXAMPLES.items() for ex in exs if not allowed or tool in allowed
    ]
    if not choices:
        return None
    hit = process.extractOne(q.casefold(), [ex for _, ex in choices], scorer=fuzz.token_set_ratio)
    if hit is None or hit[1] < 60:
        return None
    return choices[hit[2]][0], float(hit[1])


def _finish(p: Plan, allowed: set[str] | None) -> Plan:
    if allowed is not None:
        p.steps = [st for st in p.steps if st.tool in allowed] or p.steps
    return p
