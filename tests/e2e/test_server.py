"""End to end: `puhui serve` as a real uvicorn process, on SQLite and PostgreSQL, used the way a
member platform's engineer would: credentials from `puhui platform add`, signed requests over
TCP, docs and metrics from the same server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.builders import event, trip
from tests.e2e.conftest import Server, children
from tests.e2e.conftest import credentials_of as _credentials


def test_a_platform_submits_over_http_and_reads_its_receipts(
    cli: Any, server: Server, tmp_path: Path
) -> None:
    amap = _credentials(cli("platform", "add", "amap"))
    didi = _credentials(cli("platform", "add", "didi"))

    status, body = server.signed(
        amap, "POST", "/v1/records", {"records": [trip("t1"), event("e1")]}
    )
    assert status == 200, body
    assert [(r["record_id"], r["status"], r["reduction_g"]) for r in body["receipts"]] == [
        ("t1", "credited", 1079),
        ("e1", "credited", 549),
    ]
    status, again = server.signed(amap, "POST", "/v1/records", {"records": [trip("t1")]})
    assert (status, again["credited_g"], again["receipts"][0]["status"]) == (200, 0, "credited")

    assert server.signed(amap, "GET", "/v1/receipts/t1")[0] == 200
    assert server.signed(didi, "GET", "/v1/receipts/t1")[0] == 404
    status, problem = server.signed(didi, "GET", "/v1/receipts?limit=5")
    assert (status, problem["items"]) == (200, [])

    rotated = _credentials(cli("platform", "rotate-key", "amap"))
    assert server.signed(amap, "GET", "/v1/receipts/t1")[1]["code"] == "revoked_key"
    assert server.signed(rotated, "GET", "/v1/receipts/t1")[0] == 200

    # The ledger the API wrote is the one the operator verifies.
    assert "ledger sound" in cli("ledger", "verify")


def test_docs_metrics_and_logs_are_served_without_any_cdn(
    cli: Any, server: Server, tmp_path: Path
) -> None:
    amap = _credentials(cli("platform", "add", "amap"))
    server.signed(amap, "POST", "/v1/records", {"records": [trip("t1"), trip("bad", region="1")]})

    status, _, html = server.call("GET", "/docs")
    assert status == 200
    page = html.decode()
    assert "/assets/docs/swagger-ui-bundle.js" in page
    assert "http://" not in page.replace(server.base, "")
    assert "https://" not in page
    status, _, script = server.call("GET", "/assets/docs/swagger-ui-bundle.js")
    assert status == 200
    assert len(script) > 100_000

    status, _, document = server.call("GET", "/openapi.json")
    assert status == 200
    assert "X-Puhui-Signature" in json.loads(document)["components"]["securitySchemes"]

    metrics = server.call("GET", "/metrics")[2].decode()
    assert 'puhui_records_total{status="credited"} 1.0' in metrics
    assert 'puhui_records_total{status="rejected"} 1.0' in metrics
    assert 'route="/v1/records"' in metrics
    # The submission settled as one group of one submission and two records.
    assert "puhui_settlement_group_submissions_count 1.0" in metrics
    assert "puhui_settlement_group_records_sum 2.0" in metrics

    server.process.terminate()
    server.process.wait(timeout=30)
    lines = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    requests = [line for line in lines if line.get("message") == "request"]
    assert requests, "no JSON request log lines"
    assert all(line["request_id"] for line in requests)
    assert "13800138000" not in (tmp_path / "server.log").read_text()


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field is the nice value; the 2nd, the command, is in brackets.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_workers_leave_the_cores_to_the_settlement_process_first(server: Server) -> None:
    """`puhui serve --workers 2` lowers its two workers' priority (nice 5 by default); the
    settlement process, which settles all their submissions one group at a time, keeps its
    own."""
    # Two workers and the settlement process, each spawned by the server. A worker lowers its
    # priority when it loads the application, which may be after the server already answers
    # through the other one: it is given some seconds to.
    expected = [_nice(server.process.pid), 5, 5]
    deadline = time.monotonic() + 30
    while True:
        spawned = [
            pid
            for pid in children(server.process.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        nices = sorted(_nice(pid) for pid in spawned)
        if nices == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert nices == expected
