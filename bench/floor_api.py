"""The writes floor of `bench.api` on PostgreSQL: what any design must keep for a submission of new
citizens' records, written and committed before the answer, and nothing else.

For each record: its citizen's pseudonym (an HMAC-SHA256 of the raw subject, in a unique index)
with the citizen's balance, a narrow claim row with the three indexes dedup needs (platform and
record id, citizen and start, scene and ref) and one transfer. Each worker process writes the
requests waiting together with one statement (data-modifying common table expressions) and one
durable commit (group commit, as puhui does). The request is parsed and validated by the same
models as the bare baseline's. No signature, check of the records' fields, quantification,
lookup, settlement, statistics or receipt: a design that keeps these rules does at least this
much more than the bare endpoint, so its ratio to the bare endpoint is at most this one.

Served by `bench.api` beside puhui and the bare application, on its own database of the same
cluster (`FLOOR_DATABASE_URL`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from datetime import datetime
from queue import SimpleQueue

from fastapi import FastAPI
from sqlalchemy import create_engine, text

from puhui.entrypoints.api import Submission

# The leanest layout for those rows: a citizen's row holds its pseudonym and its balance (no
# account or balance row of its own); a transfer names the account it credits (the citizen's
# id) and the record; 0 stands for the issuing account.
TABLES = (
    "create table if not exists floor_citizens (id serial primary key, "
    "pseudonym varchar(64) not null unique, balance bigint not null)",
    "create table if not exists floor_claims (seq bigserial primary key, "
    "platform_id integer not null, record_id varchar(128) not null, subject_id integer not null, "
    "scene varchar(16) not null, ref varchar(256), start_ms bigint not null, end_ms bigint, "
    "status varchar(10) not null, reduction_g bigint not null)",
    "create unique index if not exists floor_claims_key on floor_claims (platform_id, record_id)",
    "create index if not exists floor_claims_trips on floor_claims (subject_id, start_ms)",
    "create unique index if not exists floor_claims_ref on floor_claims (scene, ref) "
    "where ref is not null",
    "create table if not exists floor_transfers (id bigserial primary key, "
    "debit integer not null, credit integer not null, amount bigint not null, "
    "record_seq bigint not null unique)",
)

WRITE = text(
    "with u as (select * from json_to_recordset(cast(:rows as json)) as u (pseudonym varchar, "
    "record_id varchar, scene varchar, ref varchar, start_ms bigint, grams bigint)), "
    "c as (insert into floor_citizens (pseudonym, balance) "
    "select pseudonym, sum(grams) from u group by pseudonym "
    "on conflict (pseudonym) do update set balance = floor_citizens.balance + excluded.balance "
    "returning id, pseudonym), "
    "k as (insert into floor_claims (platform_id, record_id, subject_id, scene, ref, start_ms, "
    "status, reduction_g) select 1, u.record_id, c.id, u.scene, u.ref, u.start_ms, 'credited', "
    "u.grams from u join c using (pseudonym) returning seq, subject_id, reduction_g) "
    "insert into floor_transfers (debit, credit, amount, record_seq) "
    "select 0, subject_id, reduction_g, seq from k"
)

engine = create_engine(os.environ["FLOOR_DATABASE_URL"], pool_size=2)
secret = hashlib.sha256(b"floor").digest()


@asynccontextmanager
async def _tables(_: FastAPI) -> AsyncIterator[None]:
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(1)"))  # one worker creates them
        for ddl in TABLES:
            conn.execute(text(ddl))
    yield


app = FastAPI(lifespan=_tables)


Waiting = tuple[list[dict[str, object]], Future[None]]
waiting: SimpleQueue[Waiting] = SimpleQueue()


def _writer() -> None:
    """Group commit: the requests waiting are written by one statement and one commit."""
    while True:
        group = [waiting.get()]
        while not waiting.empty():
            group.append(waiting.get())
        rows = [row for mine, _ in group for row in mine]
        try:
            with engine.begin() as conn:
                # One JSON text for the lot: PostgreSQL reads it, not the driver value by value.
                conn.execute(WRITE, {"rows": json.dumps(rows)})
        except Exception as error:
            for _, done in group:
                done.set_exception(error)
        else:
            for _, done in group:
                done.set_result(None)


threading.Thread(target=_writer, daemon=True).start()


@app.post("/v1/records")
def submit(body: Submission) -> dict[str, int]:
    """Write the rows any design keeps for the records, commit, and answer."""
    rows = [
        {
            "pseudonym": hmac.new(secret, str(r["subject"]).encode(), hashlib.sha256).hexdigest(),
            "record_id": r.get("record_id"),
            "scene": r.get("scene"),
            "ref": r.get("ref"),
            "start_ms": int(datetime.fromisoformat(str(r.get("start"))).timestamp() * 1000),
            "grams": 10,
        }
        for r in body.records
        if isinstance(r, dict)
    ]
    done: Future[None] = Future()
    waiting.put((rows, done))
    done.result()
    return {"records": len(rows)}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}
