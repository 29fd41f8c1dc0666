"""The carbon market's use cases: companies, certification, sales, transfers, retirements and
reversals of certified credits (`domain.market`; docs/market.md).

Each write is one transaction under the client's idempotency key (`service.ports.Market`): sent
again with the same key and request it answers as the first time and changes nothing; with the
same key and another request it is refused (`idempotency_conflict`). The exchange's keys
(certification, sales, reversals) are its own; each company has its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from puhui.bootstrap import App
from puhui.domain import accounts as account_rules
from puhui.domain import market as rules
from puhui.domain.accounts import Outcome
from puhui.domain.errors import InputError
from puhui.domain.federation import FederationError, node_code
from puhui.domain.market import Certification
from puhui.service.wallet.catalogue import check_text

_RETIREMENT = b"puhui unit retirement\x00"
# CR-<retirement>-<check>: ASCII digits and hex.
_RETIREMENT_ID = re.compile(r"CR-([0-9]{1,18})-[0-9A-F]{10}")


def add_company(app: App, uscc: str, name: str) -> int:
    """Register a company by its unified social credit code.

    Raises:
        InputError: not a code (its check character is checked), or no name.
        RefusedError: `company_exists`.
    """
    uscc = uscc.strip().upper()
    wrong = rules.uscc_refused(uscc)
    if wrong is not None:
        raise InputError(wrong)
    _required("a company's name", name.strip())
    return app.market().add_company(uscc, name.strip(), app.clock())


def certify(
    app: App,
    period: str,
    methodology: str,
    region: str,
    key: str,
    actor: str,
    *,
    exchange: str | None = None,
    buffer_bp: int = rules.DEFAULT_BUFFER_BP,
    programme: str | None = None,
) -> Outcome:
    """Certify the credits of a month, a methodology version and a region of the citizens who
    take part, and issue the pool's whole units as a batch.

    Raises:
        InputError: a period, region, methodology, exchange or buffer share that is not one.
        NotFoundError: no such programme.
    """
    what = Certification(
        period.strip(),
        methodology.strip(),
        region.strip(),
        (exchange or app.settings.exchange()).strip().upper(),
        buffer_bp,
        programme,
    )
    wrong = what.refused()
    if wrong is not None:
        raise InputError(wrong)
    if not rules.period_over(what.period, app.clock()):
        raise InputError(f"{what.period} is not over yet: a month is certified once it has ended")
    request = {"op": "certify", **_fields(what)}
    return app.market().certify(what, key, _digest(key, request), actor, app.clock())


def sell(app: App, uscc: str, units: int, unit_price_cny: str, key: str, actor: str) -> Outcome:
    """The exchange sells units to a company at a price a unit (CNY; the money is settled
    outside puhui).

    Raises:
        InputError: units not positive, a price that is not an amount of CNY.
        NotFoundError: no such company.
        RefusedError: `insufficient_units`.
    """
    fen = price_fen(unit_price_cny)
    _positive(units)
    uscc = uscc.strip().upper()
    request = {"op": "sell", "company": uscc, "units": units, "unit_price_fen": fen}
    return app.market().sell(uscc, units, fen, key, _digest(key, request), actor, app.clock())


def transfer(app: App, uscc: str, to: str, units: int, key: str, actor: str) -> Outcome:
    """A company moves units it holds to another company.

    Raises:
        InputError: units not positive.
        NotFoundError: no such company.
        RefusedError: `insufficient_units`, `same_company`.
    """
    _positive(units)
    uscc, to = uscc.strip().upper(), to.strip().upper()
    request = {"op": "transfer", "company": uscc, "to": to, "units": units}
    return app.market().transfer(uscc, to, units, key, _digest(key, request), actor, app.clock())


def export(
    app: App, uscc: str, node: str, to: str, name: str, units: int, key: str, actor: str
) -> Outcome:
    """A company sends units it holds to a company registered at another node of the common
    mechanism (docs/federation.md): its lowest-numbered units leave this registry at once, and
    the registry moves them into the other node's, or refuses and they come back.

    Raises:
        InputError: units not positive, a malformed node code, company code or name.
        NotFoundError: no such company here.
        RefusedError: `not_joined`, `same_node`, `insufficient_units`.
    """
    _positive(units)
    uscc, to, node, name = (
        uscc.strip().upper(),
        to.strip().upper(),
        node.strip().upper(),
        name.strip(),
    )
    try:
        node_code(node, "node")
    except FederationError as error:
        raise InputError(str(error)) from None
    why = rules.uscc_refused(to)
    if why:
        raise InputError(f"the receiving company: {why}")
    _required("the receiving company's name", name)
    if len(name) > 200:
        raise InputError("a company's name has at most 200 characters")
    request = {"op": "export", "company": uscc, "node": node, "to": to, "name": name,
               "units": units}  # fmt: skip
    return app.market().export(
        uscc, node, to, name, units, key, _digest(key, request), actor, app.clock()
    )


def retire(
    app: App, uscc: str, units: int, beneficiary: str, purpose: str, key: str, actor: str
) -> Outcome:
    """A company retires units it holds, for a beneficiary and a purpose, for good; the answer
    names its certificate.

    Raises:
        InputError: units not positive, no beneficiary or purpose.
        NotFoundError: no such company.
        RefusedError: `insufficient_units`.
    """
    _positive(units)
    beneficiary, purpose = beneficiary.strip(), purpose.strip()
    _required("a beneficiary", beneficiary)
    _required("a purpose", purpose)
    uscc = uscc.strip().upper()
    request = {
        "op": "retire",
        "company": uscc,
        "units": units,
        "beneficiary": beneficiary,
        "purpose": purpose,
    }
    done = app.market().retire(
        uscc, units, beneficiary, purpose, key, _digest(key, request), actor, app.clock()
    )
    certificate = retirement_certificate_id(app, int(done.result["retirement"]))
    return Outcome(
        done.operation, done.kind, {**done.result, "certificate": certificate}, done.replayed
    )


def reverse_credit(app: App, entry: int, reason: str, key: str, actor: str) -> Outcome:
    """Reverse a certified credit found wrong: its grams come back from the pool or from its
    batches' buffers, and a buffer's shortfall is recorded.

    Raises:
        InputError: no reason.
        NotFoundError: no such credit entry.
        RefusedError: `not_certified`, `already_reversed`.
    """
    _required("a reason", reason.strip())
    request = {"op": "reverse", "entry": entry, "reason": reason.strip()}
    return app.market().reverse_credit(
        entry, reason.strip(), key, _digest(key, request), actor, app.clock()
    )


def retirement_certificate_id(app: App, retirement: int, version: int | None = None) -> str:
    """The public id of a retirement's certificate: its number and a check keyed with the
    certificates key, so that ids cannot be guessed and a printed one can be verified."""
    if version is None:
        version = app.key("certificates")[0]
    key = hmac.digest(app.keys("certificates")[version], _RETIREMENT, "sha256")
    mac = hmac.new(key, str(retirement).encode(), "sha256").hexdigest()[:10].upper()
    return f"CR-{retirement:08d}-{mac}"


def retirement_of_certificate(app: App, certificate: str) -> int | None:
    """The retirement a certificate id names, when its check holds under a version of the
    key (None otherwise)."""
    certificate = certificate.strip()
    found = _RETIREMENT_ID.fullmatch(certificate)
    if found is None:
        return None
    retirement = int(found[1])
    for version in app.keys("certificates"):
        if hmac.compare_digest(retirement_certificate_id(app, retirement, version), certificate):
            return retirement
    return None


def price_fen(text: str) -> int:
    """An amount of CNY (`68`, `68.5`, `68.50`) in fen.

    Raises:
        InputError: not a non-negative amount with at most two decimals.
    """
    try:
        amount = Decimal(str(text).strip())
    except InvalidOperation:
        raise InputError("a price is an amount of CNY, e.g. 68.50") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise InputError("a price is an amount of CNY, not negative, with at most two decimals")
    if amount > Decimal(10) ** 12:
        raise InputError("a price is at most 1 000 000 000 000 CNY a unit")
    return int(amount * 100)


def _required(what: str, value: str) -> None:
    """A text kept and shown to people that may not be left empty.

    Raises:
        InputError: empty, not printable or too long.
    """
    if not value:
        raise InputError(f"{what} is required")
    check_text(what, value)


def _positive(units: int) -> None:
    if units <= 0:
        raise InputError("a number of units is positive")
    if units > 10**9:
        raise InputError("a number of units is at most 1 000 000 000")


def _fields(what: Certification) -> dict[str, Any]:
    return {
        "period": what.period,
        "methodology": what.methodology,
        "region": what.region,
        "exchange": what.exchange,
        "buffer_bp": what.buffer_bp,
        "programme": what.programme,
    }


def _digest(key: str, request: dict[str, Any]) -> str:
    wrong = account_rules.key_refused(key)
    if wrong is not None:
        raise InputError(wrong)
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
