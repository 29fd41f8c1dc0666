"""The nonces of signed requests, remembered so that none is accepted twice.

A nonce is kept as long as a request carrying it could still come with an acceptable timestamp
(twice the allowed clock skew), then forgotten. Claims are set-based: an API group claims the
nonces of all its requests in its own transaction, one statement for the lot. A claim is also
where a key's revocation is final: the nonce of a key revoked since its request was verified is
refused, so a server may verify signatures against keys it read a moment ago.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, select

from puhui.adapters.sql import bulk
from puhui.adapters.sql import tables as t
from puhui.domain import signing
from puhui.domain.signing import Refusal

# Nonces past the horizon are forgotten at most once a minute of requests' time, not by every
# group: one statement less for each, and a nonce kept a minute longer refuses nothing its
# timestamp would not.
FORGET_EVERY_MS = 60_000
_FORGOTTEN: dict[str, int] = {}  # the last horizon forgotten, by database
_FORGET = delete(t.request_nonces).where(t.request_nonces.c.seen_ms < bindparam("horizon"))


def claim(conn: Connection, seen: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], Refusal]:
    """Remember nonces (key id, nonce, seen in epoch ms) in the caller's transaction; return
    the (key id, nonce) pairs refused: `replayed_nonce` when used before, or more than once
    among these; `revoked_key` when their key is revoked."""
    if not seen:
        return {}
    horizon = min(ms for _, _, ms in seen) - 2 * signing.MAX_SKEW_S * 1000
    where = str(conn.engine.url)
    if horizon >= _FORGOTTEN.get(where, horizon - FORGET_EVERY_MS) + FORGET_EVERY_MS:
        conn.execute(_FORGET, {"horizon": horizon})
        _FORGOTTEN[where] = horizon
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
    # One statement when nothing is refused, the usual case: nonces of revoked keys are not
    # remembered, and only then is it asked which were.
    inserted, _ = bulk.execute(
        conn,
        "insert into request_nonces (key_id, nonce, seen_ms) "
        f"select v.column1, v.column2, v.column3 from (values {values}) v "
        "where not exists (select 1 from credentials c where c.key_id = v.column1 "
        "and c.revoked_at is not null) on conflict do nothing returning key_id, nonce",
        params,
    )
    missing = first.keys() - {(k, n) for k, n in inserted}
    revoked: set[str] = set()
    if missing:
        c = t.credentials.c
        revoked = set(
            conn.execute(
                select(c.key_id).where(
                    c.key_id.in_(sorted({k for k, _ in missing})), c.revoked_at.is_not(None)
                )
            ).scalars()
        )
    refused = {(k, n): Refusal.REVOKED_KEY for k, n, _ in seen if k in revoked}
    replayed = {(k, n) for k, n in replayed | missing if k not in revoked}
    return refused | dict.fromkeys(replayed, Refusal.REPLAYED_NONCE)
