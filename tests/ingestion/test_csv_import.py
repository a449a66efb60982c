from pathlib import Path

import pytest

from core.errors import ValidationFailed
from ingestion.csv_import import ImportSpec, import_lines, preview

POS_CSV = """Bill No,Store,Date,Phone,Loyalty,First Name,SKU,Qty,Unit Price
B1,S1,2025-03-01 10:00:00,07700 900101,LC-1,Ann,TEA,2,3.50
B1,S1,2025-03-01 10:00:00,07700 900101,LC-1,Ann,CUP,1,8.00
B2,S1,not a date,07700 900102,,Bob,TEA,1,3.50
B3,S2,2025-03-02 11:30:00,,LC-3,Cy,MUG,1,abc
B4,S2,2025-03-03 09:15:00,07700 900104,,Di,TEA,1,3.50,extra
B5,S2,2025-03-04 09:15:00,07700 900105,,Ed,TEA,1,3.50
"""
MAPPING = [
    "Bill No=properties.order_id",
    "Store=properties.store_id",
    "Date=occurred_at",
    "Phone=identifiers.phone",
    "Loyalty=identifiers.loyalty_id",
    "First Name=traits.first_name",
    "SKU=properties.items[].sku",
    "Qty=properties.items[].quantity",
    "Unit Price=properties.items[].price",
]


def _spec(**kw):
    return ImportSpec.build(
        source=kw.get("source", "pos"),
        event_type="purchase",
        fmt="csv",
        mappings=kw.get("mappings", MAPPING),
        currency="GBP",
    )


def test_preview_maps_rows_groups_line_items_and_reports_errors_by_line():
    out = preview(POS_CSV.splitlines(keepends=True), _spec(), "brand-x")
    assert out["rows"] == 6 and out["events"] == 2 and out["rejected"] == 3
    lines = {e["line"]: e["message"] for e in out["errors"]}
    assert set(lines) == {4, 5, 6}
    assert (
        "occurred_at" in lines[4]
        and "properties.items[].price" in lines[5]
        and "columns" in lines[6]
    )
    first = out["preview"][0]
    assert first["event_id"] == "S1:B1" and first["source"] == "pos"
    assert [i["sku"] for i in first["properties"]["items"]] == ["TEA", "CUP"]
    assert first["properties"]["total"] == 15.0 and first["properties"]["currency"] == "GBP"


def test_bad_mappings_name_the_problem():
    with pytest.raises(ValidationFailed, match=r"unknown canonical field 'identifiers\.ssn'"):
        _spec(mappings=["Phone=identifiers.ssn"])
    with pytest.raises(ValidationFailed, match="COLUMN=FIELD"):
        _spec(mappings=["Phone"])
    with pytest.raises(ValidationFailed, match="not in the file header: Mobile"):
        preview(
            POS_CSV.splitlines(keepends=True), _spec(mappings=["Mobile=identifiers.phone"]), "b"
        )


def test_columns_are_recognised_without_a_mapping():
    csv = "email,first_name,order_id,total,date\nann@shop-mail.com,Ann,A1,9.99,2025-01-02\n"
    out = preview(csv.splitlines(keepends=True), _spec(source="csv", mappings=[]), "b")
    ev = out["preview"][0]
    assert ev["identifiers"]["email"] == "ann@shop-mail.com" and ev["properties"]["total"] == 9.99


async def test_import_is_idempotent_and_resolves_inline(rt, brand, tmp_path: Path):
    lines = POS_CSV.splitlines(keepends=True)
    first = await import_lines(rt, brand.id, brand.slug, lines, _spec())
    assert (first.accepted, first.rejected, first.processed) == (2, 3, 2)
    again = await import_lines(rt, brand.id, brand.slug, lines, _spec())
    assert (again.accepted, again.duplicates) == (0, 2)
    n = await rt.pool.fetchval("SELECT count(*) FROM events WHERE brand_id = $1", brand.id)
    assert n == 2


async def test_rows_without_ids_are_keyed_by_content(rt, brand):
    csv = "email,total,date\na@shop-mail.com,5,2025-01-01\na@shop-mail.com,5,2025-01-01\nb@shop-mail.com,7,2025-01-02\n"
    spec = _spec(source="csv", mappings=[])
    r1 = await import_lines(rt, brand.id, brand.slug, csv.splitlines(keepends=True), spec)
    r2 = await import_lines(rt, brand.id, brand.slug, csv.splitlines(keepends=True), spec)
    assert r1.accepted == 3  # two identical purchases are two purchases
    assert r2.accepted == 0 and r2.duplicates == 3


async def test_upload_preview_endpoint(client, brand):
    files = {"file": ("pos.csv", POS_CSV.encode(), "text/csv")}
    data = {"source": "pos", "type": "purchase", "map": MAPPING, "dry_run": "true"}
    resp = await client.post("/v1/imports", files=files, data=data, headers=brand.auth("ingest"))
    assert resp.status_code == 200, resp.text
    body = resp.json()["data"]
    assert (
        body["events"] == 2
        and len(body["errors"]) == 3
        and body["preview"][0]["event_id"] == "S1:B1"
    )


def test_orders_adding_up_below_zero_are_refunds():
    # Online Retail style: a credit note "C..." with a negative quantity, no type mapped.
    text = (
        "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
        "536365,85123A,6,12/1/2010 8:26,2.55,17850\n"
        "536365,71053,6,12/1/2010 8:26,3.39,17850\n"
        "C536379,D,-1,12/1/2010 9:41,27.5,17850\n"
    )
    spec = ImportSpec.build(
        source="csv",
        event_type=None,
        fmt="csv",
        mappings=[
            "InvoiceNo=properties.order_id",
            "StockCode=properties.items[].product_id",
            "Quantity=properties.items[].quantity",
            "UnitPrice=properties.items[].price",
            "InvoiceDate=occurred_at",
            "CustomerID=identifiers.loyalty_id",
        ],
        date_format="%m/%d/%Y %H:%M",
    )
    out = preview(text.splitlines(keepends=True), spec, "brand-x")
    assert out["rejected"] == 0
    kinds = {e["event_id"]: (e["type"], e["properties"]["total"]) for e in out["preview"]}
    assert kinds == {"536365": ("purchase", 35.64), "C536379": ("refund", -27.5)}
