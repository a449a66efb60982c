"""Assistant evaluation (issue 8): correct tool choice on assistant/eval/cases.json.

Always prints the offline planner's score (pure, no database). With --brand SLUG it also
runs the full assistant on that brand's data (placeholders filled with one of its real
customers and products): Claude when ANTHROPIC_API_KEY is set (the same harness, the real
loop), else the offline planner end to end through the MCP tools.

    python bench/bench_assistant_eval.py                 # planner score only
    python bench/bench_assistant_eval.py --brand demo    # + live run (Claude if a key is set)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.eval.harness import load_cases, score_live, score_planner  # noqa: E402


async def _values(rt: Any, brand_id: Any, values: dict[str, str]) -> dict[str, str]:
    """Real identifiers of one well-known customer and one product of the brand."""
    row = await rt.pool.fetchrow(
        """SELECT p.id, p.traits_enc,
                  (SELECT value_enc FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                     AND i.profile_id = p.id AND i.kind = 'email' LIMIT 1) AS email,
                  (SELECT value_enc FROM profile_identifiers i WHERE i.brand_id = p.brand_id
                     AND i.profile_id = p.id AND i.kind = 'phone' LIMIT 1) AS phone
           FROM profiles p WHERE p.brand_id = $1 AND p.merged_into IS NULL
             AND p.order_count >= 2
           ORDER BY p.order_count DESC, p.id LIMIT 1""",
        brand_id,
    )
    product = await rt.pool.fetchval(
        "SELECT product_id FROM products WHERE brand_id = $1 ORDER BY product_id LIMIT 1",
        brand_id,
    )
    if row is None:
        return values
    from mcp_server.deps import display_name

    crypto = rt.keyring.for_brand(str(brand_id))
    out = dict(values, ref=str(row["id"]))
    if row["email"]:
        out["email"] = crypto.decrypt_str(row["email"])
    if row["phone"]:
        out["phone"] = crypto.decrypt_str(row["phone"])
    name = display_name(crypto, row["traits_enc"])
    if name:
        out["name"] = name.title()
    if product:
        out["product"] = str(product)
    return out


async def live(slug: str) -> None:
    from assistant.agent import Assistant
    from core import brands
    from core.runtime import open_runtime
    from core.settings import load_settings

    cases, values = load_cases()
    settings = load_settings()
    async with open_runtime(settings) as rt:
        async with rt.pool.acquire() as conn:
            brand = await brands.get_brand(conn, slug)
        values = await _values(rt, brand.id, values)
        async with Assistant(rt) as assistant:
            who = f"Claude ({settings.assistant_model})" if assistant.online else "offline planner"
            print(f"\nlive run on brand {slug!r} with {who}:")

            def show(r: Any) -> None:
                mark = "ok  " if r.correct else "MISS"
                print(f"  {mark} {r.case.id} {r.seconds:5.1f} s  {r.tools}")

            report = await score_live(assistant.ask, cases, values, brand.id, progress=show)
    print(report.summary())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brand", help="Also run the live assistant on this brand's data.")
    args = parser.parse_args()
    cases, values = load_cases()
    report = score_planner(cases, values)
    print(f"offline planner on {len(cases)} questions:")
    print(report.summary())
    if args.brand:
        asyncio.run(live(args.brand))


if __name__ == "__main__":
    main()
