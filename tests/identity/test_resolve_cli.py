import csv
import subprocess
import sys
from pathlib import Path

ROWS = [
    ("r1", "Jane", "Doe", "jane.doe@mail-a.com", "07700 900111"),
    ("r2", "Jane", "Doe", "JANE.DOE@mail-a.com", "+44 7700 900111"),
    ("r3", "Jane", "Doe", "", "(0)7700-900-111"),
    ("r4", "John", "Roe", "john@mail-b.com", "07700 900222"),
    ("r5", "Test", "User", "test@test.com", ""),
    ("r6", "Other", "Person", "test@test.com", ""),
]


def test_cbrain_resolve_writes_record_clusters(tmp_path: Path):
    src = tmp_path / "crm.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Customer ID", "Given", "Family", "E-mail", "Mobile"])
        w.writerows(ROWS)
    out = tmp_path / "clusters.csv"
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "resolve",
        str(src),
        "--out",
        str(out),
        "--id-column",
        "Customer ID",
        "--map",
        "Given=first_name",
        "--map",
        "Family=last_name",
        "--map",
        "E-mail=email",
        "--map",
        "Mobile=phone",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    clusters = {r["record_id"]: r["cluster_id"] for r in csv.DictReader(out.open())}
    assert clusters["r1"] == clusters["r2"] == clusters["r3"] == "r1"
    assert len({clusters["r4"], clusters["r1"], clusters["r5"], clusters["r6"]}) == 4
    bad = subprocess.run(
        [*cmd[:9], "--map", "Given=nickname"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "nickname" in bad.stderr
