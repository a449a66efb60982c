"""Turning tool results into words: one source line per call (what the answer rests on, with
its key numbers), small tables for Slack / notes, and the offline planner's templates."""

from __future__ import annotations

from typing import Any

from assistant.types import ToolCall

Data = dict[str, Any]


def _n(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * float(v):.0f}%"


def _who(ref: Data | None) -> str:
    if not ref:
        return "?"
    name = (ref.get("name") or {}).get("untrusted_text") if ref.get("name") else None
    # The whole ref: profile ids are UUIDv7, whose first characters are a timestamp shared by
    # every profile made the same day, and an analyst pastes the ref into the next question.
    ref_id = str(ref.get("customer_ref", "?"))
    contact = ref.get("contact")
    return " ".join(x for x in (name, contact, f"({ref_id})") if x)


def _notes(d: Data) -> list[str]:
    return [str(n) for n in d.get("notes") or []][:3]


# ------------------------------------------------------------------------------ sources


def source_line(call: ToolCall) -> str | None:
    """`tool(args): key numbers`, or None for refused / failed calls."""
    if call.is_error or not call.structured:
        return None
    d = call.structured
    args = ", ".join(
        f"{k}={str(v)[:8] if k in ('customer', 'query') else v}"
        for k, v in call.arguments.items()
        if v not in (None, "")
    )
    fact = _FACTS.get(call.name, lambda _d: "")(d)
    return f"{call.name}({args})" + (f": {fact}" if fact else "")


def _f_lookup(d: Data) -> str:
    cs = d.get("customers") or []
    if len(cs) != 1:
        return f"{len(cs)} matching customers"
    c = cs[0]
    churn = ((c.get("predictions") or {}).get("churn") or {}).get("probability")
    return (
        f"{c.get('orders')} orders, revenue {_n(c.get('revenue'))}, last order "
        f"{c.get('days_since_last_order')} days ago" + (f", churn {churn:.2f}" if churn else "")
    )


def _f_churn(d: Data) -> str:
    if d.get("mode") == "customer":
        ch = d.get("churn") or {}
        return f"probability {_n(ch.get('probability'))} ({ch.get('band', 'n/a')})"
    s = d.get("summary") or {}
    return (
        f"{len(d.get('at_risk') or [])} listed, {s.get('high_risk', 0)} high-risk, value at "
        f"risk {_n(s.get('total_value_at_risk'))}"
    )


def _f_segments(d: Data) -> str:
    segs = d.get("segments") or d.get("compared") or []
    return ", ".join(f"{s['name']} {s['customers']}" for s in segs[:6])


def _f_recs(d: Data) -> str:
    if d.get("mode") == "customer":
        return ", ".join(str(p.get("name") or p.get("product_id")) for p in d["products"][:3])
    return f"{len(d.get('customers') or [])} customers for {d.get('product_name') or d.get('product_id')}"


def _f_similar(d: Data) -> str:
    ns = d.get("neighbours") or []
    top = ns[0]["similarity"] if ns else None
    return f"{len(ns)} neighbours" + (f", top similarity {top:.2f}" if top is not None else "")


def _f_customers(d: Data) -> str:
    t = d.get("totals") or {}
    return (
        f"{_n(t.get('customers'))} customers, {_n(t.get('orders'))} orders, revenue "
        f"{_n(t.get('revenue'))}, AOV {_n(t.get('average_order_value'))}"
    )


def _f_products(d: Data) -> str:
    if d.get("rows"):
        r = d["rows"][0]
        return f"top {r.get('name') or r['key']} revenue {_n(r.get('revenue'))}"
    if d.get("pairs"):
        p = d["pairs"][0]
        return f"top pair {p.get('a_name') or p['a']} + {p.get('b_name') or p['b']} lift {_n(p['lift'])}"
    return "no rows"


def _f_behavior(d: Data) -> str:
    v = d.get("view")
    if v == "channel_mix" and d.get("channels"):
        c = d["channels"][0]
        return f"top channel {c['channel']} ({_pct(c.get('revenue_share'))} of revenue)"
    if v == "purchase_cadence":
        return f"median {_n((d.get('days_between_orders') or {}).get('median'), 0)} days between orders, repeat rate {_pct(d.get('repeat_rate'))}"
    if v == "cohort_retention":
        ar = d.get("average_retention") or []
        return f"month-1 retention {_pct(ar[1]) if len(ar) > 1 else 'n/a'}"
    if v == "journey_funnel" and d.get("funnel"):
        return ", ".join(f"{s['step']} {s['customers']}" for s in d["funnel"][:5])
    return str(v)


def _f_forecast(d: Data) -> str:
    return (
        f"{d.get('metric')} next {len(d.get('forecast') or [])} weeks {_n(d.get('total_forecast'))} "
        f"({d.get('method')}, MASE {_n(d.get('backtest_mase'))})"
    )


def _f_campaign(d: Data) -> str:
    return (
        f"{d.get('goal')}: {d.get('audience_size')} of {d.get('eligible_customers')} eligible, "
        f"expected value {_n(d.get('expected_value_total'))}"
    )


_FACTS = {
    "lookup_customer": _f_lookup,
    "churn_risk": _f_churn,
    "segments": _f_segments,
    "analyze_segments": _f_segments,
    "recommendations": _f_recs,
    "similar_customers": _f_similar,
    "analyze_customers": _f_customers,
    "analyze_products": _f_products,
    "analyze_behavior": _f_behavior,
    "forecast_metrics": _f_forecast,
    "target_campaign": _f_campaign,
}


# ------------------------------------------------------------------------------- tables


def table(call: ToolCall, limit: int = 10) -> dict[str, Any] | None:
    """A small table for list-shaped results (Block Kit / notes), or None."""
    if call.is_error or not call.structured:
        return None
    d = call.structured
    if call.name == "churn_risk" and d.get("at_risk"):
        rows = [
            [
                _who(r["customer"]),
                _n(r["probability"]),
                r["band"],
                _n(r.get("value_at_risk")),
                r.get("segment") or "",
            ]
            for r in d["at_risk"][:limit]
        ]
        return {
            "title": "Customers at risk",
            "columns": ["Customer", "Churn", "Band", "Value at risk", "Segment"],
            "rows": rows,
        }
    if call.name in ("segments", "analyze_segments") and (d.get("segments") or d.get("compared")):
        segs = d.get("segments") or d.get("compared") or []
        rows = [
            [
                s["name"],
                _n(s["customers"]),
                _pct(s.get("share")),
                _n(s.get("average_expected_value")),
                _n(s.get("average_churn")),
                _n(s.get("average_order_value")),
            ]
            for s in segs[:limit]
        ]
        return {
            "title": "Segments",
            "columns": ["Segment", "Customers", "Share", "Avg LTV", "Avg churn", "AOV"],
            "rows": rows,
        }
    if call.name == "forecast_metrics" and d.get("forecast"):
        rows = [
            [str(w["week_start"]), _n(w["forecast"]), f"{_n(w['lower'])} – {_n(w['upper'])}"]
            for w in d["forecast"][:limit]
        ]
        return {
            "title": f"Forecast: {d['metric']}",
            "columns": ["Week", "Forecast", f"{d.get('interval_level')}% interval"],
            "rows": rows,
        }
    if call.name == "analyze_products" and d.get("rows"):
        rows = [
            [r.get("name") or r["key"], _n(r["revenue"]), _n(r["units"], 0), _n(r["buyers"])]
            for r in d["rows"][:limit]
        ]
        return {
            "title": "Products",
            "columns": ["Product", "Revenue", "Units", "Buyers"],
            "rows": rows,
        }
    if call.name == "target_campaign" and d.get("members"):
        rows = [
            [_who(m["customer"]), _n(m["expected_value"]), m["reason"][:80]]
            for m in d["members"][:limit]
        ]
        return {
            "title": f"Audience: {d['goal']}",
            "columns": ["Customer", "Expected value", "Why"],
            "rows": rows,
        }
    if call.name == "analyze_customers" and d.get("groups"):
        rows = [
            [
                g["key"],
                _n(g["customers"]),
                _n(g["orders"]),
                _n(g["revenue"]),
                _n(g.get("average_order_value")),
            ]
            for g in d["groups"][:limit]
        ]
        return {
            "title": f"Customers by {d.get('group_by')}",
            "columns": [d.get("group_by", "group"), "Customers", "Orders", "Revenue", "AOV"],
            "rows": rows,
        }
    return None


# ---------------------------------------------------------------------------- templates


def describe(call: ToolCall) -> str:
    """A few sentences answering from one tool result (offline mode)."""
    if call.refused:
        return f"I can't run {call.name} here ({(call.error or '').removeprefix('refused: ')})."
    if call.is_error or not call.structured:
        return f"{call.name} returned no data: {call.error or 'no result'}"
    d = call.structured
    text = _TEMPLATES[call.name](d, call.arguments)
    notes = _notes(d)
    if notes:
        text += "\nNote: " + "; ".join(notes)
    return text


def _t_lookup(d: Data, _a: Data) -> str:
    out = []
    for c in (d.get("customers") or [])[:3]:
        name = (c.get("name") or {}).get("untrusted_text") if c.get("name") else None
        ids = ", ".join(i["value"] for i in c.get("identifiers", [])[:2])
        p = c.get("predictions") or {}
        churn, ltv, seg = p.get("churn") or {}, p.get("ltv") or {}, p.get("segment") or {}
        lines = [
            f"Customer {name or ''} {ids} (customer_ref {c['customer_ref']}):".replace("  ", " "),
            f"- {c['orders']} orders, revenue {_n(c['revenue'])}, average order {_n(c.get('average_order_value'))}, "
            f"refunds {_n(c.get('refunds'))}",
        ]
        if c.get("last_order_at"):
            last = c["recent_orders"][0] if c.get("recent_orders") else {}
            lines.append(
                f"- last order {str(c['last_order_at'])[:10]} ({c.get('days_since_last_order')} days ago)"
                + (
                    f" via {last.get('channel')}, total {_n(last.get('total'))}, {last.get('items')} item(s)"
                    if last
                    else ""
                )
            )
        else:
            lines.append("- no orders yet")
        if churn:
            lines.append(
                f"- churn risk {churn['probability']:.2f} ({churn['band']}); suggested action: {churn.get('suggested_action')}"
            )
        if ltv:
            lines.append(
                f"- expected value {_n(ltv.get('expected_value'))} ({ltv.get('decile') or 'n/a'})"
            )
        if seg:
            lines.append(f"- segment {seg.get('name')}")
        if c.get("top_categories"):
            lines.append(
                "- favourite categories: "
                + ", ".join(t["category"] for t in c["top_categories"][:3])
            )
        if c.get("recent_interactions"):
            lines.append(
                f"- {len(c['recent_interactions'])} recent messages/tickets, latest {str(c['recent_interactions'][0]['at'])[:10]}"
            )
        out.append("\n".join(lines))
    return "\n".join(out) or "No customer matched."


def _t_churn(d: Data, _a: Data) -> str:
    if d.get("mode") == "customer":
        ch = d.get("churn")
        if not ch:
            return f"No churn prediction for this customer ({d.get('orders')} orders, last {d.get('days_since_last_order')} days ago)."
        drivers = ", ".join(f"{x['feature']}={x.get('value')}" for x in ch.get("drivers", [])[:3])
        return (
            f"Churn risk {ch['probability']:.2f} ({ch['band']}) over {ch.get('horizon_days') or '?'} days; "
            f"drivers: {drivers or 'n/a'}. Value at risk {_n(d.get('value_at_risk'))}. "
            f"Suggested action: {ch.get('suggested_action')}."
        )
    if not d.get("predictions_available"):
        return "No churn predictions exist for this brand yet, so I cannot rank customers by risk."
    s = d.get("summary") or {}
    head = (
        f"{s.get('high_risk', 0)} high-risk and {s.get('medium_risk', 0)} medium-risk customers of "
        f"{s.get('scored_customers', 0)} scored"
        + (f" in {d['list_segment']}" if d.get("list_segment") else "")
        + f"; total value at risk {_n(s.get('total_value_at_risk'))}. Top by {d.get('rank_by')}:"
    )
    rows = [
        f"- {_who(r['customer'])}: churn {r['probability']:.2f} ({r['band']}), value at risk {_n(r.get('value_at_risk'))}, {r.get('segment') or 'no segment'}"
        for r in (d.get("at_risk") or [])[:10]
    ]
    return "\n".join([head, *rows])


def _t_segments(d: Data, _a: Data) -> str:
    segs = d.get("segments") or d.get("compared") or []
    if not segs:
        return "No segments have been computed for this brand yet."
    lines = [
        f"- {s['name']}: {s['customers']} customers ({_pct(s.get('share'))}), avg LTV {_n(s.get('average_expected_value'))}, "
        f"avg churn {_n(s.get('average_churn'))}, AOV {_n(s.get('average_order_value'))}, repeat {_pct(s.get('repeat_rate'))}"
        for s in segs[:12]
    ]
    text = "Segments:\n" + "\n".join(lines)
    if d.get("flows"):
        text += "\nLargest movements: " + "; ".join(
            f"{f['from_segment']} -> {f['to_segment']} {f['customers']}" for f in d["flows"][:5]
        )
    if d.get("stayed_share") is not None:
        text += f"\nStayed in the same segment: {_pct(d['stayed_share'])}."
    return text


def _t_recs(d: Data, _a: Data) -> str:
    if d.get("mode") == "customer":
        ps = d.get("products") or []
        if not ps:
            return "No product recommendations for this customer."
        return "Recommended products:\n" + "\n".join(
            f"- {p.get('name') or p['product_id']} ({p.get('category') or 'n/a'}): {p.get('reason') or ''}"
            for p in ps[:5]
        )
    cs = d.get("customers") or []
    return (
        f"Customers to offer {d.get('product_name') or d.get('product_id')} to ({d.get('method')}):\n"
        + "\n".join(f"- {_who(m['customer'])}: {m['reason']}" for m in cs[:10])
    )


def _t_similar(d: Data, _a: Data) -> str:
    ns = d.get("neighbours") or []
    return f"Most similar customers ({d.get('method')}):\n" + "\n".join(
        f"- {_who(x['customer'])}: similarity {x['similarity']:.2f}; {', '.join(x.get('shared') or []) or 'n/a'}"
        for x in ns[:10]
    )


def _t_customers(d: Data, a: Data) -> str:
    t = d.get("totals") or {}
    scope = f"last {a['period_days']} days" if a.get("period_days") else "lifetime"
    text = (
        f"Customers ({scope}): {_n(t.get('customers'))} customers, {_n(t.get('buyers'))} buyers, "
        f"{_n(t.get('orders'))} orders, revenue {_n(t.get('revenue'))}, average order value "
        f"{_n(t.get('average_order_value'))}, repeat rate {_pct(t.get('repeat_rate'))}."
    )
    groups = d.get("groups") or []
    if groups and d.get("group_by") != "none":
        text += f"\nBy {d['group_by']}:\n" + "\n".join(
            f"- {g['key']}: {_n(g['customers'])} customers, revenue {_n(g['revenue'])}, AOV {_n(g.get('average_order_value'))}"
            for g in groups[:10]
        )
    return text


def _t_products(d: Data, _a: Data) -> str:
    if d.get("rows"):
        return f"{d['view'].replace('_', ' ').capitalize()} (last {_days(d)} days):\n" + "\n".join(
            f"- {r.get('name') or r['key']}: revenue {_n(r['revenue'])} ({_pct(r.get('revenue_share'))}), {_n(r['units'], 0)} units, {r['buyers']} buyers"
            for r in d["rows"][:10]
        )
    if d.get("pairs"):
        return "Bought together:\n" + "\n".join(
            f"- {p.get('a_name') or p['a']} + {p.get('b_name') or p['b']}: {p['together']} times, lift {_n(p['lift'])}"
            for p in d["pairs"][:10]
        )
    return "No product data in that window."


def _days(d: Data) -> str:
    try:
        from datetime import datetime

        s, e = (datetime.fromisoformat(str(d[k])) for k in ("window_start", "window_end"))
        return str((e - s).days)
    except (KeyError, ValueError):
        return "?"


def _t_behavior(d: Data, _a: Data) -> str:
    v = d.get("view")
    if v == "channel_mix":
        return (
            "Channel mix:\n"
            + "\n".join(
                f"- {c['channel']}: {c['buyers']} buyers, {c['orders']} orders, revenue {_n(c['revenue'])} ({_pct(c.get('revenue_share'))})"
                for c in d.get("channels") or []
            )
            + f"\nMultichannel buyers: {_pct(d.get('multichannel_share'))}."
        )
    if v == "purchase_cadence":
        g = d.get("days_between_orders") or {}
        return (
            f"Purchase cadence: median {_n(g.get('median'), 0)} days between orders (p25 {_n(g.get('p25'), 0)}, "
            f"p75 {_n(g.get('p75'), 0)}); repeat rate {_pct(d.get('repeat_rate'))}; overdue repeat buyers {_pct(d.get('overdue_share'))}."
        )
    if v == "cohort_retention":
        ar = d.get("average_retention") or []
        return (
            "Cohort retention (average share buying in month 0, 1, 2…): "
            + ", ".join(_pct(x) for x in ar[:7])
            + "\n"
            + "\n".join(
                f"- {c['cohort']}: {c['customers']} customers, "
                + ", ".join(_pct(x) for x in c["retention"][:6])
                for c in (d.get("cohorts") or [])[:8]
            )
        )
    steps = d.get("funnel") or []
    return "Journey funnel:\n" + "\n".join(
        f"- {s['step']}: {s['customers']} customers (conversion {_pct(s.get('conversion_from_previous'))})"
        for s in steps
    )


def _t_forecast(d: Data, _a: Data) -> str:
    rows = d.get("forecast") or []
    text = (
        f"Forecast of weekly {d['metric']} ({d.get('unit')}) for the next {len(rows)} weeks: total "
        f"{_n(d.get('total_forecast'))}. Method {d.get('method')} (backtest MASE {_n(d.get('backtest_mase'))}, "
        f"MAPE {_n(d.get('backtest_mape_percent'), 1)}%), {d.get('interval_level')}% intervals:"
    )
    lines = [
        f"- week of {w['week_start']}: {_n(w['forecast'])} ({_n(w['lower'])} – {_n(w['upper'])})"
        for w in rows[:8]
    ]
    hist = d.get("recent_history") or []
    if hist:
        lines.append("Recent weeks: " + ", ".join(_n(h["value"]) for h in hist[-4:]))
    return "\n".join([text, *lines])


def _t_campaign(d: Data, _a: Data) -> str:
    text = (
        f"Campaign {d['goal']} ({d['method']}): {d['audience_size']} customers of {d['eligible_customers']} eligible "
        f"({d['eligibility']}); expected value {_n(d['expected_value_total'])} at response rate {_pct(d['response_rate'])}"
    )
    if d.get("cost_total") is not None:
        text += f", cost {_n(d['cost_total'])}, net {_n(d.get('expected_net'))}"
    return (
        text
        + ".\nTop members:\n"
        + "\n".join(
            f"- {_who(m['customer'])}: {_n(m['expected_value'])} ({m['reason']})"
            for m in (d.get("members") or [])[:8]
        )
    )


_TEMPLATES = {
    "lookup_customer": _t_lookup,
    "churn_risk": _t_churn,
    "segments": _t_segments,
    "analyze_segments": _t_segments,
    "recommendations": _t_recs,
    "similar_customers": _t_similar,
    "analyze_customers": _t_customers,
    "analyze_products": _t_products,
    "analyze_behavior": _t_behavior,
    "forecast_metrics": _t_forecast,
    "target_campaign": _t_campaign,
}
