"""The common mechanism end to end: a registry and three exchanges' nodes, each `puhui` processes
with a database of its own on loopback, fed concurrently with overlapping traffic of several
platforms, while the registry is killed and restarted, a node is killed mid-registration and
restarted, and another node is cut off from the registry for a while (its requests dropped,
then delayed).

Afterwards: no record is left held, every ledger verifies, every behaviour is credited exactly
once nationwide (none twice, none lost), and the outcome equals one node fed every record in
the registry's order.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.service import admin, credentials, federation, ledger, queries
from tests.e2e.conftest import Server, _puhui, credentials_of
from tests.federation import final_receipts, one_node
from tests.pgcluster import free_port

CHINA = timezone(timedelta(hours=8))
DAY = datetime(2026, 10, 12, 7, tzinfo=CHINA)
NODES = {"BJ": ("amap", "bjcard"), "SH": ("bank", "shcard"), "GZ": ("wechat", "gzcard")}
pytestmark = pytest.mark.slow


class Proxy:
    """A TCP proxy from a node to the registry that can cut the link: `mode` "open", "drop"
    (connections are closed at once) or "delay" (each connection waits `delay_s` first)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "open"
        self.delay_s = 2.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode == "drop":
            client.close()
            return
        if self.mode == "delay":
            time.sleep(self.delay_s)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Each socket is the source of one pipe: closed when its pipe ends.
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            source.close()

    def close(self) -> None:
        self.listener.close()


@dataclass
class Process:
    """A `puhui` server process in a session of its own (killed with its children)."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    base: str
    health: str
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._answers():
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.2)

    def _answers(self) -> bool:
        assert self.process is not None
        try:
            return Server(self.base, self.process).call("GET", self.health)[0] == 200
        except OSError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*_puhui(), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name):
            return line.split()[-1]
    raise AssertionError(output)


@dataclass
class Node:
    code: str
    env: dict[str, str]
    server: Process
    port: int
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Mechanism:
    registry: Process
    registry_env: dict[str, str]
    nodes: dict[str, Node]
    proxies: dict[str, Proxy]

    def app(self, env: dict[str, str]) -> App:
        return bootstrap(Settings(env["PUHUI_DATABASE_URL"], Path(env["PUHUI_KEY_FILE"])))


@contextlib.contextmanager
def _app(env: dict[str, str]) -> Iterator[App]:
    app = bootstrap(
        Settings(
            env["PUHUI_DATABASE_URL"],
            Path(env["PUHUI_KEY_FILE"]),
            exchange_code=env.get("PUHUI_EXCHANGE"),
        )
    )
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def mechanism(new_database: Callable[[Path], str], tmp_path: Path) -> Iterator[Mechanism]:
    base_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PUHUI_EVIDENCE": "none"}
    (tmp_path / "registry").mkdir()
    registry_env = {
        **base_env,
        "PUHUI_DATABASE_URL": new_database(tmp_path / "registry"),
        "PUHUI_KEY_FILE": str(tmp_path / "registry" / "subject.key"),
    }
    _run(registry_env, "init")
    registry_key = _field(_run(registry_env, "federation", "identity"), "public key")
    registry_port = free_port()
    registry = Process(
        [*_puhui(), "federation", "serve", "--port", str(registry_port)],
        registry_env,
        tmp_path / "registry.log",
        f"http://127.0.0.1:{registry_port}",
        "/healthz",
    )
    registry.start()
    shared = tmp_path / "federation.key"
    nodes: dict[str, Node] = {}
    proxies: dict[str, Proxy] = {}
    try:
        for code, platforms in NODES.items():
            folder = tmp_path / code
            folder.mkdir()
            key = folder / "subject.key"
            if shared.exists():
                shutil.copy(shared, key)
            env = {
                **base_env,
                "PUHUI_DATABASE_URL": new_database(folder),
                "PUHUI_KEY_FILE": str(key),
                "PUHUI_EXCHANGE": code,
            }
            proxies[code] = Proxy(registry_port)
            url = f"http://127.0.0.1:{proxies[code].port}"
            port = free_port()
            server = Process(
                [*_puhui(), "serve", "--port", str(port), "--workers", "1"],
                env,
                folder / "server.log",
                f"http://127.0.0.1:{port}",
                "/readyz",
            )
            node = Node(code, env, server, port)
            if code == "BJ":
                # One node is set up with the commands an exchange's operator types.
                _run(env, "init")
                me = _run(env, "federation", "identity")
                _run(
                    registry_env, "federation", "enrol", code,
                    "--key", _field(me, "public key"), "--fingerprint", _field(me, "fingerprint"),
                )  # fmt: skip
                _run(env, "federation", "join", url, "--registry-key", registry_key)
                for p in platforms:
                    node.credentials[p] = credentials_of(_run(env, "platform", "add", p))
            else:
                with _app(env) as app, _app(registry_env) as at_registry:
                    admin.init(app)
                    me = federation.identity(app)
                    federation.enrol(at_registry, me.node, me.public_key, me.fingerprint)
                    federation.join(app, url, registry_key)
                    for p in platforms:
                        admin.add_platform(app, p)
                        issued = credentials.issue(app, p)
                        node.credentials[p] = {"key_id": issued.key_id, "secret": issued.secret}
            if not shared.exists():
                shutil.copy(key, shared)
            node.server.start()
            nodes[code] = node
        yield Mechanism(registry, registry_env, nodes, proxies)
    finally:
        for node in nodes.values():
            node.server.stop()
        registry.stop()
        for proxy in proxies.values():
            proxy.close()


def _traffic(seed: int) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], dict[str, int]]:
    """Per node, (platform, record) in sending order; and the behaviour of each record id.

    Behaviours: bus rides (a citizen's rides 40 minutes apart, none overlapping another),
    reported by one to three platforms at different nodes a minute or two apart, some with the
    transit card's tap id as ref; recycling receipts with their receipt number as ref,
    reported at one to three nodes. Then replays (a record sent again as it was) and conflicts
    (a record id sent again with other content)."""
    rng = random.Random(seed)
    per_node: dict[str, list[tuple[str, dict[str, Any]]]] = {code: [] for code in NODES}
    behaviour_of: dict[str, int] = {}
    number = 0
    for citizen in range(40):
        subject = f"139{citizen:08d}"
        for k in range(rng.randint(1, 5)):
            b = len(set(behaviour_of.values()))
            start = DAY + timedelta(minutes=40 * k)
            ref = f"TAP-{citizen}-{k}" if rng.random() < 0.3 else None
            for code in rng.sample(sorted(NODES), rng.randint(1, 3)):
                number += 1
                shift = timedelta(minutes=rng.randint(0, 2))
                record = {
                    "record_id": f"{code.lower()}-{number}",
                    "subject": subject,
                    "scene": "bus",
                    "region": "110000",
                    "start": (start + shift).isoformat(),
                    "end": (start + shift + timedelta(minutes=20)).isoformat(),
                    "distance_km": 5,
                    **({"ref": ref} if ref and rng.random() < 0.8 else {}),
                }
                per_node[code].append((NODES[code][rng.randint(0, 1)], record))
                behaviour_of[record["record_id"]] = b
        if rng.random() < 0.5:
            b = len(set(behaviour_of.values()))
            for code in rng.sample(sorted(NODES), rng.randint(1, 3)):
                number += 1
                record = {
                    "record_id": f"{code.lower()}-{number}",
                    "subject": subject,
                    "scene": "recycling",
                    "region": "510100",
                    "start": (DAY + timedelta(hours=6)).isoformat(),
                    "quantity": "2.5",
                    "material": "paper",
                    "ref": f"RCPT-{citizen}",
                }
                per_node[code].append((NODES[code][0], record))
                behaviour_of[record["record_id"]] = b
    for records in per_node.values():
        rng.shuffle(records)
        for platform, record in rng.sample(records, len(records) // 10):
            records.append((platform, dict(record)))  # replay
        for platform, record in rng.sample(records, 3):
            records.append((platform, {**record, "distance_km": 9}))  # conflict
    return per_node, behaviour_of


def _send(node: Node, records: list[tuple[str, dict[str, Any]]], gap_s: float) -> None:
    """Send a node's records in small signed requests, retrying until each is answered (the
    node may be down for a while)."""
    server = Server(node.base, None)  # type: ignore[arg-type]
    for i in range(0, len(records), 8):
        part = records[i : i + 8]
        for platform in sorted({p for p, _ in part}):
            body = {"records": [{**r, "platform": platform} for p, r in part if p == platform]}
            deadline = time.monotonic() + 120
            while True:
                try:
                    status, answer = server.signed(
                        node.credentials[platform], "POST", "/v1/records", body
                    )
                except OSError:
                    status, answer = 0, None
                if status == 200:
                    break
                assert time.monotonic() < deadline, (status, answer)
                time.sleep(0.3)
        time.sleep(gap_s)


# The exchanges' nodes and the registry run on PostgreSQL in production; the same protocol on
# SQLite is held by tests/integration/test_federation.py.
@pytest.mark.postgres
@pytest.mark.parametrize("new_database", ["postgres"], indirect=True)
def test_every_behaviour_is_credited_once_nationwide_through_faults(
    mechanism: Mechanism, tmp_path: Path, new_database: Callable[[Path], str]
) -> None:
    per_node, behaviour_of = _traffic(seed=7)
    senders = [
        threading.Thread(target=_send, args=(mechanism.nodes[code], per_node[code], 0.15))
        for code in NODES
    ]
    for s in senders:
        s.start()
    # Faults while the traffic flows.
    time.sleep(1.5)
    mechanism.proxies["GZ"].mode = "drop"  # Guangzhou's node is cut off from the registry
    time.sleep(1.0)
    mechanism.registry.kill()  # the registry dies
    time.sleep(1.5)
    mechanism.registry.start()
    mechanism.nodes["SH"].server.kill()  # Shanghai's node dies, registering or not
    time.sleep(1.0)
    mechanism.nodes["SH"].server.start()
    mechanism.proxies["GZ"].mode = "delay"  # the link comes back, slow
    time.sleep(3.0)
    mechanism.proxies["GZ"].mode = "open"
    for s in senders:
        s.join(timeout=300)
        assert not s.is_alive()

    apps = {code: mechanism.app(node.env) for code, node in mechanism.nodes.items()}
    registry = mechanism.app(mechanism.registry_env)
    try:
        # Every node catches up: nothing left to send, nothing held.
        deadline = time.monotonic() + 180
        while True:
            states = {code: federation.status(app) for code, app in apps.items()}
            if all(
                s["records_to_send"] == 0 and s["held_awaiting_registry"] == 0
                and s["batches_sent"] == s["batches_answered"]
                for s in states.values()
            ):  # fmt: skip
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
        for code, app in apps.items():
            assert ledger.verify(app) == [], code
        outcome = final_receipts(apps, NODES)
        # Every behaviour credited exactly once nationwide: none twice, none lost.
        credited: dict[int, int] = {}
        for (_platform, record_id), (status, grams) in outcome.items():
            if status == "credited":
                assert grams > 0
                b = behaviour_of[record_id]
                credited[b] = credited.get(b, 0) + 1
        assert set(credited) == set(behaviour_of.values())
        assert set(credited.values()) == {1}
        # Some of them are another node's duplicates, found by the registry.
        federated = [k for k, (s, _) in outcome.items() if s == "duplicate"]
        assert federated
        # Conflicts are refused and not stored: every stored record is credited or a duplicate.
        assert {s for s, _ in outcome.values()} == {"credited", "duplicate"}
        # One node fed every record in the registry's order gives the same outcome.
        order = federation.registry(registry).order()
        assert len(order) == len(behaviour_of)
        first_sent: dict[tuple[str, str], dict[str, Any]] = {}
        for records in per_node.values():
            for platform, record in records:
                first_sent.setdefault((platform, record["record_id"]), record)
        folder = tmp_path / "reference"
        folder.mkdir()
        reference = bootstrap(
            Settings(new_database(folder), folder / "subject.key"),
            clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
        )
        try:
            admin.init(reference)
            expected = one_node(
                apps,
                registry,
                NODES,
                lambda p, r: {**first_sent[(p, r)], "platform": p},
                reference,
            )
        finally:
            reference.close()
        assert outcome == expected
        # The registry's oversight sees every node and the duplicates between them.
        seen = {n["code"]: n for n in federation.registry(registry).nodes()}
        assert set(seen) == set(NODES)
        assert sum(n["first"] for n in seen.values()) == len(set(behaviour_of.values()))
        between = federation.registry(registry).duplicates_between()
        assert all(a != b for a, b, _ in between)
        ended = sum(
            queries.receipt(apps[code], platform, record_id).reason == "duplicate_federated"
            for code, platforms in NODES.items()
            for (platform, record_id) in federated
            if platform in platforms
        )
        assert 0 < ended <= sum(n for *_, n in between)
        # Every node computes with the shipped methodology versions: one added each to the
        # shared catalogue, the others recognised it.
        catalogue = federation.registry(registry).catalogue()
        assert {v["ref"] for v in catalogue} == {m.ref for m in registry.catalogue.methodologies}
        assert all(v["nodes"] == sorted(NODES) and not v["differs"] for v in catalogue)
        # Each node's background sync brought the registry's figures back with its inbox.
        for code, app in apps.items():
            figures = federation.registry_figures(app)
            assert figures is not None, code
            assert code in {n["code"] for n in figures[0]["nodes"]}
        # What the operators see from the command line.
        status = _run(mechanism.nodes["BJ"].env, "federation", "status")
        assert "held_awaiting_registry   0" in status
        assert "records_to_send          0" in status
        listed = _run(mechanism.registry_env, "federation", "nodes")
        for code in NODES:
            assert f"{seen[code]['claims']:,}" in listed
        assert "duplicates between nodes" in listed
        assert _run(mechanism.nodes["GZ"].env, "federation", "sync").startswith("0 batches")
        # `federation sync` asks for the figures: they are the registry's, as of now.
        figures = federation.registry_figures(apps["GZ"])
        assert figures is not None
        assert {n["code"]: n["claims"] for n in figures[0]["nodes"]} == {
            code: n["claims"] for code, n in seen.items()
        }
    finally:
        for app in [*apps.values(), registry]:
            app.close()
