"""The nonces of signed requests, remembered so that none is accepted twice.

A nonce is kept as long as a request carrying it could still come with an acceptable timestamp
(twice the allowed clock skew), then forgotten. Claims are set-based: an API group claims the
nonces of all its requests in its own transaction, one statement for the lot.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, text

from puhui.adapters.sql import tables as t
from puhui.domain import signing


def claim(conn: Connection, seen: Sequence[tuple[str, str, int]]) -> set[tuple[str, str]]:
    """Remember nonces (key id, nonce, seen in epoch ms) in the caller's transaction; return
    the (key id, nonce) pairs used before, or more than once among these."""
    if not seen:
        return set()
    horizon = min(ms for _, _, ms in seen) - 2 * signing.MAX_SKEW_S * 1000
    conn.execute(delete(t.request_nonces).where(t.request_nonces.c.seen_ms < horizon))
    first: dict[tuple[str, str], int] = {}
    replayed: set[tuple[str, str]] = set()
    for key, nonce, ms in seen:
        if (key, nonce) in first:
            replayed.add((key, nonce))
        else:
            first[(key, nonce)] = ms
    rows = [{"k": k, "n": n, "ms": ms} for (k, n), ms in first.items()]
    values = ", ".join(f"(:k{i}, :n{i}, :ms{i})" for i in range(len(rows)))
    params = {f"{name}{i}": row[name] for i, row in enumerate(rows) for name in ("k", "n", "ms")}
    inserted = conn.execute(
        text(
            f"insert into request_nonces (key_id, nonce, seen_ms) values {values} "
            "on conflict do nothing returning key_id, nonce"
        ),
        params,
    ).all()
    return replayed | (first.keys() - {(k, n) for k, n in inserted})
