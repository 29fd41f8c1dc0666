"""Transactions on a personal carbon account: redeem a reward, retire grams against one's own
footprint, give grams or points, and (the operator) reverse an entry.

Each is one transaction that does all of it or nothing (`service.ports.Operations`: one
database call on PostgreSQL), recorded under the client's idempotency key: sent again with the
same key and the same request, it returns the first answer and changes nothing; with the same
key and another request it is refused (`idempotency_conflict`). The rules, and the order in
which they refuse, are `domain.accounts`'.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from puhui.bootstrap import App
from puhui.domain import accounts as rules
from puhui.domain.accounts import Outcome
from puhui.domain.errors import InputError
from puhui.service.wallet.catalogue import check_text
from puhui.service.wallet.certificates import with_certificate


def redeem(app: App, pseudonym: str, reward: str, key: str, actor: str) -> Outcome:
    """Redeem a reward for a citizen: pay its price from their grams or points, take one from
    its stock, hand out a coupon code or a tree number.

    Raises:
        InputError: an idempotency key that is not one.
        NotFoundError: no such reward.
        RefusedError: `not_available` (outside its window), `limit_reached`,
            `insufficient_balance`, `out_of_stock`, `idempotency_conflict`.
    """
    digest = _digest(key, {"op": "redeem", "reward": reward})
    done = app.operations().redeem(pseudonym, reward, key, digest, actor, app.clock())
    return _shown(app, done)


def retire(
    app: App,
    pseudonym: str,
    grams: int,
    key: str,
    actor: str,
    footprint: Mapping[str, Any] | None = None,
) -> Outcome:
    """Retire grams against the citizen's own footprint, for good, and issue a certificate.

    Args:
        footprint: the declared footprint it offsets (kind, inputs, computed grams and their
            explanation, from `puhui.domain.footprints`), kept on the certificate.

    Raises:
        InputError: grams not positive.
        RefusedError: `insufficient_balance`, `idempotency_conflict`.
    """
    if grams <= 0:
        raise InputError("retire a positive number of grams")
    request = {"op": "retire", "grams": grams, "footprint": dict(footprint or {})}
    digest = _digest(key, request)
    done = app.operations().retire(pseudonym, grams, footprint, key, digest, actor, app.clock())
    return _shown(app, done)


def transfer(
    app: App,
    pseudonym: str,
    to_pseudonym: str,
    amount: int,
    key: str,
    actor: str,
    programme: str | None = None,
) -> Outcome:
    """Give grams (or, with a programme, that programme's points) to another citizen.

    Raises:
        InputError: amount not positive, or the citizen giving to themselves.
        NotFoundError: no such programme.
        RefusedError: `gift_too_large`, `daily_gift_limit`, `insufficient_balance`,
            `idempotency_conflict`.
    """
    if amount <= 0:
        raise InputError("give a positive amount")
    if to_pseudonym == pseudonym:
        raise InputError("a citizen cannot give to themselves")
    request = {"op": "transfer", "to": to_pseudonym, "amount": amount, "programme": programme}
    digest = _digest(key, request)
    done = app.operations().give(
        pseudonym, to_pseudonym, amount, programme, key, digest, actor, app.clock()
    )
    return _shown(app, done)


def reverse(app: App, entry_id: int, key: str, actor: str, reason: str) -> Outcome:
    """Reverse an entry with its mirror (a correction or a refund; the ledger is never edited):
    a credit (and the points it earned), a redemption or a transfer. The citizen the entry is
    about is the one who must have the grams or points back.

    Raises:
        NotFoundError: no such entry.
        RefusedError: `not_reversible` (a retirement, an award, an expiry, a reversal),
            `already_reversed`, `insufficient_balance`, `idempotency_conflict`.
    """
    if not reason.strip():
        raise InputError("say why the entry is reversed")
    check_text("a reason", reason, 500)
    request = {"op": "reverse", "entry": entry_id, "reason": reason.strip()}
    digest = _digest(key, request)
    done = app.operations().reverse(entry_id, reason.strip(), key, digest, actor, app.clock())
    return _shown(app, done)


def _digest(key: str, request: dict[str, Any]) -> str:
    """The digest of a request under a key, after checking the key.

    Raises:
        InputError: not a key.
    """
    wrong = rules.key_refused(key)
    if wrong is not None:
        raise InputError(wrong)
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _shown(app: App, done: Outcome) -> Outcome:
    """An operation's answer as people read it (its certificate id, when it has one)."""
    result = with_certificate(app, done.operation, done.kind, done.result)
    return (
        done if result is done.result else Outcome(done.operation, done.kind, result, done.replayed)
    )
