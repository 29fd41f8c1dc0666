"""The common mechanism (`domain.federation`, docs/federation.md): a node registering its claims
with the registry, and the registry registering every node's claims in one global order.

A node: `join` links it to a registry; from then on what it would credit is held awaiting the
registry. `sync` sends its next batch (the valid records settled since the last one, the
claims to withdraw, the credits certified, the batches of units issued and the units sent to
other nodes, the methodology versions not registered yet), the oldest unanswered one first and
exactly as it was signed, and applies the answer in one unit of work: `first` credits a record
(or leaves it held for what else it waits for), `duplicate` ends it as a duplicate, a refused
send gives the units back. A batch whose answer was lost is sent again and answered the same,
so a node that was killed, or cut off from the registry, catches up in order and exactly once.
Then it reads its inbox: the units other nodes sent it, and (`oversight`) every node's figures.

The registry: `receive` checks a batch's signature against the node's enrolled key, its fields,
and its number (the node's next), then registers it in one transaction and signs the answer;
`inbox` answers a node's signed request for what was sent to it; `figures` are its counts of
every node.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from puhui.adapters.keystore import PURPOSES
from puhui.adapters.sql.federation import SqlCommonRegistry
from puhui.bootstrap import App
from puhui.domain.errors import AuthenticationError, InputError, RefusedError
from puhui.domain.federation import (
    INBOX_PAGE,
    MAX_EVENTS,
    PROTOCOL,
    Answer,
    Claim,
    Event,
    FederationError,
    Link,
    Op,
    Recognition,
    Refusal,
    UnitsRefusal,
    Verdict,
    answer_document,
    batch_document,
    canonical,
    claim_of,
    claims_key,
    inbox_document,
    inbox_request,
    is_hex,
    key_fingerprint,
    node_code,
    parse_answers,
    parse_events,
    parse_inbox,
    parse_inbox_request,
    parse_methodologies,
    parse_recognitions,
    parse_units,
    parse_units_refused,
)
from puhui.domain.reasons import Reason
from puhui.domain.review import Resolution, on_registry
from puhui.service import ledger

PATH = "/v1/federation/batches"
INBOX_PATH = "/v1/federation/inbox"
HEADER_NODE = "Puhui-Node"
HEADER_SIGNATURE = "Puhui-Signature"
_CONTEXT = b"puhui federation\x00"
TIMEOUT_S = 10.0
FIGURES_EVERY_S = 60.0


class Unreachable(Exception):
    """The registry did not answer (refused, timed out, or a 5xx): the batch waits, unchanged,
    and is sent again."""


# Keys ------------------------------------------------------------------------------------------


def _private(app: App) -> Ed25519PrivateKey:
    """This installation's signing key of the common mechanism: a version of the `federation`
    key written for it (version 0 is derived from the subject key, which a federation's nodes
    share: it never signs)."""
    version, secret = app.key("federation")
    if version == 0:
        app.keyring.rotate("federation")
        version, secret = app.key("federation")
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(_CONTEXT + secret).digest())


def public_key(app: App) -> str:
    """This installation's Ed25519 public key, hex: what a registry enrols a node with, or what
    a node joins a registry with."""
    raw = (
        _private(app)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return raw.hex()


def _verify(public_hex: str, message: bytes, signature_hex: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(
            bytes.fromhex(signature_hex), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """What a node's operator hands the registry's operator to be enrolled."""

    node: str
    public_key: str
    fingerprint: str


def identity(app: App) -> Identity:
    """This node's code (`PUHUI_EXCHANGE`), public key and claims-key fingerprint."""
    return Identity(
        app.settings.exchange(), public_key(app), key_fingerprint(claims_key(app.secret))
    )


# A node -----------------------------------------------------------------------------------------


def own_keys(app: App) -> list[str]:
    """Give this node a key of its own for every purpose still at version 0: a federation's
    nodes share the subject key, and version 0 of every other purpose is derived from it, so
    another node could sign as this one. Returns the purposes rotated."""
    rotated = []
    for purpose in PURPOSES:
        if app.key(purpose)[0] == 0:
            app.keyring.rotate(purpose)
            rotated.append(purpose)
    return rotated


def join(app: App, url: str, registry_key: str) -> int:
    """Link this node to a registry; returns the first record seq it will register. Every key
    still derived from the shared subject key is replaced by one of the node's own first
    (`own_keys`): join a node before it issues credentials or tokens.

    Raises:
        InputError: the URL is not http(s) or the key is not 64 hex characters.
        RefusedError: this node joined a registry already.
    """
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError("the registry's URL starts with http:// or https://")
    key = registry_key.strip().lower()
    if not is_hex(key, 64):
        raise InputError("the registry's key is its Ed25519 public key: 64 hex characters")
    node = node_code(app.settings.exchange(), "PUHUI_EXCHANGE")
    own_keys(app)
    with app.intake() as uow:
        first = uow.federation.join(node, url, key, app.clock())
        uow.commit()
    return first


class Transport(Protocol):
    """How a node reaches its registry."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        """POST a body; (status, response body, the response's signature header).

        Raises:
            Unreachable: no answer.
        """
        ...


class HttpTransport:
    """`Transport` over HTTP with the standard library, with a timeout."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        # `join` accepts http:// and https:// URLs only.
        headers = {**headers, "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return response.status, response.read(), response.headers.get(HEADER_SIGNATURE, "")
        except urllib.error.HTTPError as error:
            if error.code >= 500:
                raise Unreachable(f"the registry answered {error.code}") from None
            return error.code, error.read(), ""
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            raise Unreachable(f"the registry is unreachable ({type(error).__name__})") from None


@dataclass
class Synced:
    """What one round of `sync` did."""

    batches: int = 0
    claims: int = 0
    withdrawn: int = 0
    first: int = 0
    duplicates: int = 0
    credited: int = 0
    ended_duplicate: int = 0
    still_held: int = 0
    certified: int = 0
    certifications_refused: int = 0
    units_sent: int = 0
    units_returned: int = 0
    units_received: int = 0
    methodologies: dict[str, str] = field(default_factory=dict)  # id@version → verdict
    unreachable: str | None = None
    refused: list[str] = field(default_factory=list)


def _batch(app: App, limit: int) -> tuple[int, bytes] | None:
    """The batch to send: the oldest unanswered one, else a new one built and kept (one unit of
    work), else None when there is nothing to send."""
    with app.intake() as uow:
        fed = uow.federation
        link = fed.lock()
        if link is None:
            raise RefusedError(
                "not_joined", "this node has not joined a registry: run `puhui federation join`"
            )
        pending = fed.unanswered()
        if pending is not None:
            return pending
        out = fed.outgoing(link, limit)
        versions = fed.methodologies_to_register(fingerprints(app))
        if not (
            out.records or out.withdrawals or out.certified or out.issued or out.sends or versions
        ):
            if out.certified_through != link.certified_through:
                # Only credits without a claim were certified: nothing to send about them.
                fed.store_watermark(out)
                uow.commit()
            return None
        key = claims_key(app.secret)
        claims = [
            (
                r.seq,
                claim_of(
                    key, link.node, r.platform, r.record_id, r.scene, r.ref, r.pseudonym,
                    r.start_ms, r.end_ms,
                ),
            )
            for r in out.records
        ]  # fmt: skip
        ids = {seq: c.id for seq, c in claims} | fed.claim_ids(s for s, _ in out.withdrawals)
        # Each event at its place in receive order: a claim at its seq, a withdrawal just
        # before the first record settled after the decision.
        placed: list[tuple[float, Event]] = [(float(s), Event(Op.CLAIM, c)) for s, c in claims]
        placed += [
            (decided - 0.5, Event(Op.WITHDRAW, Claim(ids[seq], None, None, None, None)))
            for seq, decided in out.withdrawals
            if seq in ids
        ]
        placed.sort(key=lambda p: p[0])
        # Certifications last: each credit's claim was answered `first` before it was credited.
        placed += [
            (0.0, Event(Op.CERTIFY, Claim(claim, None, None, None, None), root))
            for _, claim, root in out.certified
        ]
        body = canonical(
            batch_document(
                link.registry_key,
                link.node,
                link.next_batch,
                [e for _, e in placed],
                uow.store.federation_tallies(),
                [*out.issued, *out.sends],
                versions,
            )
        )
        fed.store_batch(
            link.next_batch,
            body,
            [(s, c.id) for s, c in claims],
            [seq for seq, _ in out.withdrawals if seq in ids],
            out,
            app.clock(),
        )
        fed.store_methodologies(link.next_batch, versions)
        uow.commit()
        return link.next_batch, body


def fingerprints(app: App) -> list[tuple[str, str]]:
    """Every methodology version this installation computes with, and its fingerprint."""
    found = app.memo.get("methodology_fingerprints")
    if found is None:
        catalogue = app.catalogue
        found = [(m.ref, catalogue.fingerprint(m.ref)) for m in catalogue.methodologies]
        app.memo["methodology_fingerprints"] = found
    return list(found)


def sync(
    app: App,
    transport: Transport | None = None,
    limit: int = MAX_EVENTS,
    oversight: bool = False,
) -> Synced:
    """Send batches until nothing is left to send, or the registry does not answer (`Synced.
    unreachable`), or refuses a batch (`Synced.refused`: an operator must look; the batch is
    kept and sent again next time); then receive the units other nodes sent (and, with
    `oversight`, the registry's figures of every node)."""
    transport = transport or HttpTransport()
    done = Synced()
    _send(app, transport, limit, done)
    if done.unreachable is None and not done.refused:
        _receive(app, transport, oversight, done)
    return done


def _send(app: App, transport: Transport, limit: int, done: Synced) -> None:
    while True:
        with app.intake() as uow:
            link = uow.federation.link()
        if link is None:
            raise RefusedError(
                "not_joined", "this node has not joined a registry: run `puhui federation join`"
            )
        batch = _batch(app, limit)
        if batch is None:
            return
        number, body = batch
        answered = _post(app, transport, link, PATH, body, done)
        if answered is None:
            return
        _apply(app, link.registry_key, link.node, (number, body), *answered, done)
        done.batches += 1


def _post(
    app: App, transport: Transport, link: Link, path: str, body: bytes, done: Synced
) -> tuple[bytes, str] | None:
    """Send a signed document to the registry: its answer and the answer's signature, or None
    when the registry is unreachable or refuses it (said in `done`)."""
    signature = _private(app).sign(body).hex()
    try:
        status, answer, answer_signature = transport.post(
            link.url + path, body, {HEADER_NODE: link.node, HEADER_SIGNATURE: signature}
        )
    except Unreachable as error:
        done.unreachable = str(error)
        return None
    if status != 200:
        done.refused.append(_refusal(status, answer))
        return None
    return answer, answer_signature


def _receive(app: App, transport: Transport, oversight: bool, done: Synced) -> None:
    """Read the registry's inbox of this node after the last move received, a page at a time,
    and apply each page in one unit of work (`Unreachable` or a refusal ends the round: the
    inbox is read again next time from where it was applied)."""
    while True:
        with app.intake() as uow:
            link = uow.federation.link()
        assert link is not None
        body = inbox_request(
            link.registry_key, link.node, link.inbox_through, _now_ms(app), oversight
        )
        answered = _post(app, transport, link, INBOX_PATH, body, done)
        if answered is None:
            return
        answer, answer_signature = answered
        if not _verify(link.registry_key, answer, answer_signature):
            raise FederationError("the inbox is not signed by the registry")
        try:
            document = json.loads(answer)
        except ValueError:
            raise FederationError("the inbox is not JSON") from None
        if (document.get("protocol"), document.get("node"), document.get("inbox_after")) != (
            PROTOCOL,
            link.node,
            link.inbox_through,
        ) or document.get("registry") != link.registry_key:
            raise FederationError("the answer is not the registry's inbox of this node")
        incoming = parse_inbox(document)
        figures = document.get("oversight") if oversight else None
        with app.intake() as uow:
            uow.federation.lock()
            done.units_received += uow.federation.received(
                incoming, figures if isinstance(figures, dict) else None, app.clock()
            )
            uow.commit()
        oversight = False
        if len(incoming) < INBOX_PAGE:
            return


def _now_ms(app: App) -> int:
    return int(app.clock().timestamp() * 1000)


def _refusal(status: int, answer: bytes) -> str:
    """A registry's refusal as one line: its status, and its problem document's code and detail
    (`409 batch_out_of_order: batch 3 of BJ; expected 2`)."""
    try:
        problem = json.loads(answer)
        code, detail = str(problem.get("code", "")), str(problem.get("detail", ""))
    except (ValueError, AttributeError):
        code = detail = ""
    return " ".join(p for p in (f"{status}", f"{code}:" if code else "", detail) if p)


def _apply(
    app: App,
    registry_key: str,
    node: str,
    batch: tuple[int, bytes],
    answer: bytes,
    signature: str,
    done: Synced,
) -> None:
    """Apply the registry's answer to a batch (its number, and its body as sent) in one unit of
    work.

    Raises:
        FederationError: the answer is not signed by the registry, or not the answer to this
            batch (nothing is applied; the batch is sent again).
    """
    number, sent = batch
    if not _verify(registry_key, answer, signature):
        raise FederationError(f"the answer to batch {batch[0]} is not signed by the registry")
    try:
        document = json.loads(answer)
    except ValueError:
        raise FederationError(f"the answer to batch {number} is not JSON") from None
    if (document.get("protocol"), document.get("node"), document.get("batch")) != (
        PROTOCOL,
        node,
        number,
    ) or document.get("registry") != registry_key:
        raise FederationError(f"the answer is not the registry's answer to batch {number}")
    answers = parse_answers(document)
    at = app.clock()
    with app.intake() as uow:
        fed = uow.federation
        if not fed.answered(number, answer, signature, at):
            return  # applied already (by another process of this node)
        seqs = fed.claims_of(a.id for a in answers)
        if len(seqs) != len({a.id for a in answers}):
            raise FederationError(f"the answer to batch {number} names claims it does not hold")
        verdicts = [(seqs[a.id], a) for a in answers]
        fed.verdicts(verdicts)
        holds = {h.seq: h for h in uow.store.open_holds(seqs.values())}
        ended: list[Resolution] = []
        rest: list[tuple[int, str]] = []
        for seq, a in verdicts:
            done.claims += 1
            done.first += a.verdict is Verdict.FIRST
            done.duplicates += a.verdict is Verdict.DUPLICATE
            h = holds.get(seq)
            if h is None or Reason.AWAITING_REGISTRY not in h.reasons:
                continue
            outcome, remaining = on_registry(
                h.reasons, a.verdict is Verdict.FIRST, h.corroborated_by is not None
            )
            if outcome is None:
                rest.append((seq, ";".join(remaining)))
                done.still_held += 1
                continue
            ended.append(Resolution(seq, outcome, "registry", _note(a), h.corroborated_by))
            done.credited += a.verdict is Verdict.FIRST
            done.ended_duplicate += a.verdict is Verdict.DUPLICATE
        done.withdrawn += len(document.get("withdrawn") or [])
        refused = [(str(c), str(r)) for c, r in document.get("refused") or []]
        done.certifications_refused += len(refused)
        recognised = parse_recognitions(document)
        fed.recognitions(number, [(ref, v.value) for ref, v in recognised])
        done.methodologies.update((ref, v.value) for ref, v in recognised)
        units_refused = parse_units_refused(document)
        sends = [u for u in json.loads(sent).get("units", []) if u["op"] == "send"]
        done.units_returned += fed.units_refused([(n, r.value) for n, r in units_refused], at)
        refused_sends = {n for n, _ in units_refused}
        done.units_sent += sum(
            u["last"] - u["first"] + 1 for u in sends if u["transfer"] not in refused_sends
        )
        certified = [e["id"] for e in json.loads(sent)["events"] if e["op"] == Op.CERTIFY.value]
        refused_ids = {c for c, _ in refused}
        accepted = [c for c in certified if c not in refused_ids]
        done.certified += len(accepted)
        fed.certifications(accepted, refused)
        fed.update_hold_reasons(rest)
        if ended:
            uow.store.resolve_holds(ended, at)
        uow.commit()
    ledger.seal_quietly(app)


def _note(a: Answer) -> str:
    """What the registry's answer says, as kept with the decision."""
    if a.verdict is Verdict.FIRST:
        return f"first nationwide (registry position {a.position})"
    return (
        f"duplicate of node {a.of_node}'s claim {a.of_claim} "
        f"({', '.join(a.reasons)}; registry position {a.position})"
    )


def registry_figures(app: App) -> tuple[dict[str, Any], datetime] | None:
    """The registry's figures of every node (`figures`), as this node last received them, and
    when; None before it has."""
    with app.intake() as uow:
        return uow.federation.oversight()


def status(app: App) -> dict[str, Any]:
    """What this node's link has done and what waits."""
    with app.intake() as uow:
        return uow.federation.status()


class SyncLoop:
    """Sync in the background every `interval_s` (faster while there is work), for `puhui
    serve` and `puhui federation sync --follow`; a failed round is logged and retried."""

    def __init__(
        self,
        app: App,
        interval_s: float = 0.5,
        transport: Transport | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.interval_s = interval_s
        self.transport = transport or HttpTransport()
        self.log = log or (lambda _m: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._figures_at: float | None = None

    def round(self) -> Synced | None:
        """One round; None when this node has not joined a registry. The registry's figures
        are asked for once a minute."""
        with self.app.intake() as uow:
            if uow.federation.link() is None:
                return None
        now = time.monotonic()
        figures = self._figures_at is None or now - self._figures_at >= FIGURES_EVERY_S
        done = sync(self.app, self.transport, oversight=figures)
        if figures and done.unreachable is None and not done.refused:
            self._figures_at = now
        return done

    def run(self) -> None:
        """Sync until stopped. A failure is logged when it starts and once a minute while it
        lasts, by its kind only (a database error's text carries its statement), and rounds
        slow down to one every ten seconds meanwhile."""
        failing_since: float | None = None
        logged = 0.0
        while not self._stop.is_set():
            problem = None
            try:
                done = self.round()
            except Exception as error:
                problem = f"federation sync failed ({type(error).__name__})"
            else:
                if done is not None and (done.unreachable or done.refused):
                    problem = f"federation sync: {done.unreachable or '; '.join(done.refused)}"
            now = time.monotonic()
            if problem is None:
                if failing_since is not None:
                    self.log(f"federation sync recovered after {now - failing_since:.0f} s")
                failing_since = None
                self._stop.wait(self.interval_s)
                continue
            if failing_since is None or now - logged >= 60:
                self.log(problem)
                logged = now
            if failing_since is None:
                failing_since = now
            self._stop.wait(min(10.0, max(self.interval_s, now - failing_since)))

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="federation-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# The registry -----------------------------------------------------------------------------------


def registry(app: App) -> SqlCommonRegistry:
    """The registry's store, on this installation's database."""
    return SqlCommonRegistry(app.engine)


def enrol(app: App, code: str, key: str, fingerprint: str, name: str | None = None) -> None:
    """Enrol a node at this registry.

    Raises:
        InputError: a field is malformed.
        RefusedError: the code is enrolled already, or the node's claims key is not the one
            the federation's other nodes use (its digests would match none of theirs).
    """
    try:
        code = node_code(code.strip().upper(), "code")
    except FederationError as error:
        raise InputError(str(error)) from None
    key = key.strip().lower()
    fingerprint = fingerprint.strip().lower()
    if not is_hex(key, 64):
        raise InputError("a node's key is its Ed25519 public key: 64 hex characters")
    if not is_hex(fingerprint, 32):
        raise InputError("a node's fingerprint is 32 hex characters (`puhui federation identity`)")
    store = registry(app)
    others = {n["code"]: n for n in store.nodes()}
    for other in others:
        known = store.node(other)
        if known is not None and known.fingerprint != fingerprint:
            raise RefusedError(
                "claims_key_differs",
                f"node {code}'s claims key differs from the federation's (node {other}'s): "
                "its nodes pseudonymise with one subject key",
            )
    store.add_node(code, name or code, key, fingerprint, app.clock())


def _signed_by(app: App, node: str, body: bytes, signature: str, what: str) -> None:
    """Check that a node's batch or request is signed by the key it was enrolled with.

    Raises:
        AuthenticationError: `unknown_node`, `bad_signature`.
    """
    known = registry(app).node(node) if node else None
    if known is None:
        raise AuthenticationError("unknown_node", "this registry has not enrolled the node")
    if not _verify(known.public_key, body, signature):
        raise AuthenticationError("bad_signature", f"the {what} is not signed by the node's key")


def receive(app: App, node: str, body: bytes, signature: str) -> tuple[bytes, str]:
    """Register a node's signed batch; the answer and its signature (hex).

    Raises:
        AuthenticationError: the node is not enrolled, or the signature is not its.
        InputError: the batch does not follow the protocol (the message names the field).
        RefusedError: `batch_conflict`, `batch_out_of_order` or `claim_registered`.
    """
    _signed_by(app, node, body, signature, "batch")
    own = public_key(app)
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise FederationError("a batch is a JSON object")
        if document.get("protocol") != PROTOCOL:
            raise FederationError(f"protocol: {PROTOCOL} expected")
        if document.get("registry") != own:
            raise FederationError("registry: the batch is for another registry")
        if document.get("node") != node:
            raise FederationError("node: not the node that signed it")
        number = document.get("batch")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number < 2**31:
            raise FederationError("batch: a number from 1 expected")
        tallies = document.get("tallies", {})
        if not isinstance(tallies, dict) or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, int) and not isinstance(v, bool)
            for k, v in tallies.items()
        ):
            raise FederationError("tallies: an object of counts expected")
        events = parse_events(document.get("events"))
        units = parse_units(node, document.get("units"))
        versions = parse_methodologies(document.get("methodologies"))
    except FederationError as error:
        raise InputError(f"invalid_batch: {error}") from None
    except ValueError:  # JSON that does not parse, or text that is not UTF-8
        raise InputError("invalid_batch: not JSON") from None

    def answer(
        answers: list[Answer],
        withdrawn: list[str],
        refused: list[tuple[str, Refusal]],
        units_refused: list[tuple[int, UnitsRefusal]],
        recognised: list[tuple[str, Recognition]],
    ) -> tuple[bytes, str]:
        signed = canonical(
            answer_document(
                own, node, number, answers, withdrawn, refused, units_refused, recognised
            )
        )
        return signed, _private(app).sign(signed).hex()

    return registry(app).register(
        node, number, hashlib.sha256(body).hexdigest(), events, tallies, answer, app.clock(),
        units, versions,
    )  # fmt: skip


def inbox(app: App, node: str, body: bytes, signature: str) -> tuple[bytes, str]:
    """Answer a node's signed request for the units other nodes sent it (and the registry's
    figures, when it asks): the answer and its signature (hex).

    Raises:
        AuthenticationError: the node is not enrolled, or the signature is not its.
        InputError: the request does not follow the protocol, or is stale.
    """
    _signed_by(app, node, body, signature, "request")
    own = public_key(app)
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise FederationError("a request is a JSON object")
        asked, after, with_figures = parse_inbox_request(document, own, _now_ms(app))
        if asked != node:
            raise FederationError("node: not the node that signed it")
    except FederationError as error:
        raise InputError(f"invalid_request: {error}") from None
    except ValueError:
        raise InputError("invalid_request: not JSON") from None
    store = registry(app)
    signed = canonical(
        inbox_document(
            own,
            node,
            after,
            store.inbox(node, after, INBOX_PAGE),
            figures(app) if with_figures else None,
        )
    )
    return signed, _private(app).sign(signed).hex()


def figures(app: App) -> dict[str, Any]:
    """The registry's figures of every node: what each registered (claims, firsts, duplicates,
    withdrawals, its latest tallies), the duplicates between nodes, the units each issued,
    holds, sent and received, and the shared methodology catalogue. Counts and codes only: no
    personal data."""
    store = registry(app)
    return {
        "nodes": [
            {**n, "seen_at": None if n["seen_at"] is None else str(n["seen_at"])}
            for n in store.nodes()
        ],
        "duplicates_between": [
            {"node": a, "of_node": b, "claims": n} for a, b, n in store.duplicates_between()
        ],
        "units": store.units_between(),
        "methodologies": store.catalogue(),
    }
