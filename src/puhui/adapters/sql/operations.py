"""Citizens' operations on SQL: each one transaction that claims the idempotency key, checks,
posts and records the result, or changes nothing.

Two renderings of `domain.accounts`. `SqlOperations` says the rules in Python over SQL
statements, in one short transaction (what SQLite runs: it has one writer at a time, so what an
operation reads stays true until it commits). `PgOperations` calls one PL/pgSQL function per
operation (migration 0009: `puhui_redeem`, `puhui_retire`, `puhui_give`), one round trip
with its commit, holding each row only as long as the call; its reversals, rare and run by the
operator, are the Python ones. The stateful property test holds both to the same model of the
rules.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import accounts, ledger
from puhui.adapters.sql import tables as t
from puhui.domain import accounts as rules
from puhui.domain import china_time
from puhui.domain.accounts import Outcome, Refusal, RewardTerms
from puhui.domain.errors import InsufficientBalance, NotFoundError

_CLAIM = text(
    "insert into operations (subject_id, idempotency_key, kind, request_digest, reward_id, "
    "actor, result, created_at) values (:s, :k, :kind, :d, :r, :a, '{}', :at) "
    "on conflict (subject_id, idempotency_key) do nothing returning id"
).bindparams(bindparam("at", type_=t.operations.c.created_at.type))
_STORED = text(
    "select id, request_digest, kind, result from operations "
    "where subject_id = :s and idempotency_key = :k"
)
_RESULT = text("update operations set result = :r where id = :o")
_BEFORE = text(
    "select count(*) from operations where subject_id = :s and reward_id = :r and kind = 'redeem'"
)
_PARTS = text(
    "select shard, account_id, allotted, taken, next_number from reward_stock "
    "where reward_id = :r order by shard"
)
_TAKE = text(
    "update reward_stock set taken = taken + 1, next_number = :next "
    "where reward_id = :r and shard = :s and (allotted is null or taken < allotted)"
)
_CODE = text(
    "select ordinal, code from reward_codes where reward_id = :r and operation_id is null "
    "order by ordinal limit 1"
)
_HAND_CODE = text(
    "update reward_codes set operation_id = :o where reward_id = :r and ordinal = :n "
    "and operation_id is null"
)
_GIVEN = text(
    "select coalesce(sum(amount), 0) from transfers "
    "where debit_account_id = :a and kind = 'transfer' and created_at >= :since"
).bindparams(bindparam("since", type_=t.transfers.c.created_at.type))


class SqlOperations:
    """Implements `service.ports.Operations` in Python over SQL, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def redeem(
        self, pseudonym: str, reward: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Redeem a reward (`domain.accounts`: window, limit, balance, stock)."""
        with self.engine.begin() as conn:
            subject = accounts.subject(conn, pseudonym)
            terms, reward_id, project = _terms(conn, reward)
            claimed = _claim(conn, subject, key, "redeem", digest, actor, at, reward_id)
            if isinstance(claimed, Outcome):
                return claimed
            if terms.unit == "g":
                payer = accounts.citizen(conn, subject, open_=False)
            else:
                assert terms.programme is not None
                payer = accounts.points(conn, terms.programme, [subject])[subject]
            before = 0
            if terms.per_citizen_limit is not None:
                # The payer's row queues this citizen's operations: the count sees the ones
                # before.
                accounts.lock(conn, payer)
                before = int(conn.execute(_BEFORE, {"s": subject, "r": reward_id}).scalar_one())
                before -= 1  # this one
            refused = rules.redemption_refused(terms, at, before)
            if refused is None:
                held = accounts.balance(conn, payer)
                if payer is None or not rules.debit_allowed(held, terms.price):
                    asked = f"{terms.code} costs {terms.price} {terms.unit}"
                    refused = rules.insufficient(held, terms.price, terms.unit, asked)
            if refused is not None:
                raise refused.error()
            assert payer is not None
            sink, handed = _take_one(conn, terms, reward_id, claimed)
            entry = ledger.post(
                conn,
                "redeem",
                [(payer, -terms.price, True), (sink, terms.price, False)],
                at,
                operation=claimed,
            )
            result: dict[str, Any] = {
                "reward": terms.code,
                "kind": terms.kind,
                "unit": terms.unit,
                "price": terms.price,
                "entry": entry,
            }
            if terms.kind == "coupon":
                result["coupon_code"] = handed
            elif terms.kind == "tree":
                result |= {"tree_number": handed, "project": project}
            else:
                result["project"] = project
            return _done(conn, claimed, "redeem", result)

    def retire(
        self,
        pseudonym: str,
        grams: int,
        footprint: Mapping[str, Any] | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """Retire grams for good into the citizen's retired account."""
        with self.engine.begin() as conn:
            subject = accounts.subject(conn, pseudonym)
            claimed = _claim(conn, subject, key, "retire", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            payer = accounts.citizen(conn, subject, open_=False)
            held = accounts.balance(conn, payer)
            if payer is None or not rules.debit_allowed(held, grams):
                asked = f"retiring {grams} g takes them"
                raise rules.insufficient(held, grams, "g", asked).error()
            retired = accounts.shared(conn, "retired", f"retired:{subject}", "g", owner=subject)
            entry = ledger.post(
                conn, "retire", [(payer, -grams, True), (retired, grams, False)], at,
                operation=claimed,
            )  # fmt: skip
            result = {
                "retired_g": grams,
                "entry": entry,
                "footprint": dict(footprint or {}) or None,
            }
            return _done(conn, claimed, "retire", result)

    def give(
        self,
        pseudonym: str,
        to: str,
        amount: int,
        programme: str | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """Give grams, or a programme's points, to another citizen."""
        with self.engine.begin() as conn:
            subject = accounts.subject(conn, pseudonym)
            taker_subject = accounts.subject(conn, to)
            if programme is not None:
                accounts.programme_row(conn, programme)
            claimed = _claim(conn, subject, key, "transfer", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            if programme is None:
                unit = "g"
                giver = accounts.citizen(conn, subject)
                taker = accounts.citizen(conn, taker_subject)
                assert giver is not None
                assert taker is not None
            else:
                unit = "pt"
                found = accounts.points(conn, programme, [subject, taker_subject])
                giver, taker = found[subject], found[taker_subject]
            since = china_time.day_start(at)
            given = int(conn.execute(_GIVEN, {"a": giver, "since": since}).scalar_one())
            refused = rules.gift_refused(amount, unit, given)
            if refused is None:
                held = accounts.balance(conn, giver)
                if not rules.debit_allowed(held, amount):
                    refused = rules.insufficient(held, amount, unit, f"a gift of {amount} {unit}")
            if refused is not None:
                raise refused.error()
            entry = ledger.post(
                conn, "transfer", [(giver, -amount, True), (taker, amount, False)], at,
                operation=claimed,
            )  # fmt: skip
            result = {"amount": amount, "unit": unit, "programme": programme, "entry": entry}
            return _done(conn, claimed, "transfer", result)

    def reverse(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Reverse an entry by its mirror (and a credit's points by theirs), recorded under the
        citizen the grams or points go back to. Two reversals of one entry at the same moment
        (PostgreSQL: several writers) meet on the unique index of what a transfer reverses:
        the second is decided once more, and then refused as already reversed."""
        try:
            return self._reverse(entry, reason, key, digest, actor, at)
        except IntegrityError:
            return self._reverse(entry, reason, key, digest, actor, at)

    def _reverse(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        with self.engine.begin() as conn:
            pseudonym = _about(conn, entry)
            subject = accounts.subject(conn, pseudonym)
            claimed = _claim(conn, subject, key, "reverse", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            x = t.transfers
            row = conn.execute(
                select(x.c.kind, x.c.debit_account_id, x.c.credit_account_id, x.c.amount).where(
                    x.c.id == entry
                )
            ).one()
            done = conn.execute(select(x.c.id).where(x.c.reverses == entry)).scalar_one_or_none()
            certified = row.kind == "credit" and (
                conn.execute(
                    text(
                        "select 1 from pool_credits p join transfers x "
                        "on x.record_seq = p.record_seq where x.id = :e"
                    ),
                    {"e": entry},
                ).first()
                is not None
            )
            refused = rules.reversal_refused(entry, row.kind, done is not None, certified)
            if refused is not None:
                raise refused.error()
            kinds = dict(
                conn.execute(
                    select(t.accounts.c.id, t.accounts.c.kind).where(
                        t.accounts.c.id.in_([row.debit_account_id, row.credit_account_id])
                    )
                ).all()
            )
            # The mirror: what went in comes out again (guarded, unless the account is a
            # source).
            taker = row.credit_account_id
            try:
                mirrors = [
                    ledger.post(
                        conn,
                        "reversal",
                        [
                            (taker, -row.amount, kinds[taker] not in ("issuance", "programme")),
                            (row.debit_account_id, row.amount, False),
                        ],
                        at,
                        operation=claimed,
                        reverses=entry,
                    )
                ]
            except InsufficientBalance as short:
                raise short.saying(f"reversing entry {entry} takes back {row.amount}") from None
            if row.kind == "credit":
                mirrors += _reverse_points(conn, entry, claimed, at)
            result = {"reversed": entry, "entries": mirrors, "reason": reason}
            return _done(conn, claimed, "reverse", result)


class Calls:
    """The connections the operations' functions are called on, each with its cursor, opened
    on first use and lent to one call at a time (at most `size` at once; a call beyond waits),
    committing each statement, until `close`. An operation is a few statements' work in the
    database: borrowed from the engine's pool and given back, through the engine's layers,
    with a new cursor each time, a call cost the client more CPU than the call itself (with 16
    clients on two cores, 0.38 ms against 0.22, and each new cursor about as much again)."""

    def __init__(self, engine: Engine, size: int = 16) -> None:
        url = engine.url.set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.idle: list[psycopg.Cursor[Any]] = []
        self.lent = threading.BoundedSemaphore(size)
        self.lock = threading.Lock()

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        """Lend a cursor for one call; a connection found broken is closed, not lent again."""
        with self.lent:
            with self.lock:
                cursor = self.idle.pop() if self.idle else None
            if cursor is None or cursor.connection.closed:
                cursor = psycopg.connect(self.conninfo, autocommit=True).cursor()
            try:
                yield cursor
            except psycopg.OperationalError:
                cursor.connection.close()
                raise
            finally:
                if not cursor.connection.closed:
                    with self.lock:
                        self.idle.append(cursor)

    def close(self) -> None:
        """Close the connections not lent."""
        with self.lock:
            for cursor in self.idle:
                cursor.connection.close()
            self.idle.clear()


class PgOperations(SqlOperations):
    """Implements `service.ports.Operations` on PostgreSQL: each citizen's operation one call
    of its function (migration 0009) on this thread's connection of `calls`, committed by the
    call: one round trip. Reversals are the Python ones, on `engine`."""

    def __init__(self, engine: Engine, calls: Calls) -> None:
        super().__init__(engine)
        self.calls = calls

    def redeem(
        self, pseudonym: str, reward: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        return self._call(
            "select puhui_redeem(%s, %s, %s, %s, %s, %s)",
            (pseudonym, reward, key, digest, actor, at),
        )

    def retire(
        self,
        pseudonym: str,
        grams: int,
        footprint: Mapping[str, Any] | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        footprint_json = json.dumps(dict(footprint or {}) or None, sort_keys=True)
        return self._call(
            "select puhui_retire(%s, %s, %s, %s, %s, %s, %s)",
            (pseudonym, grams, footprint_json, key, digest, actor, at),
        )

    def give(
        self,
        pseudonym: str,
        to: str,
        amount: int,
        programme: str | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        unit = "g" if programme is None else "pt"
        return self._call(
            "select puhui_give(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                pseudonym, to, amount, programme, rules.MAX_GIFT[unit],
                rules.MAX_GIFTS_PER_DAY[unit], china_time.day_start(at), key, digest, actor, at,
            ),
        )  # fmt: skip

    def _call(self, statement: str, arguments: tuple[Any, ...]) -> Outcome:
        """Call an operation's function. A key claimed at the same moment by another request
        fails on the unique index of `operations`, and a connection found broken (a server
        restarted) fails as such: either way the call is made once more, and a key the first
        call or the other request committed is then answered from the operation stored."""
        try:
            answer = self._execute(statement, arguments)
        except (psycopg.errors.UniqueViolation, psycopg.OperationalError):
            answer = self._execute(statement, arguments)
        parsed = json.loads(answer)
        return Outcome(
            int(parsed["operation"]), parsed["kind"], parsed["result"], bool(parsed["replayed"])
        )

    def _execute(self, statement: str, arguments: tuple[Any, ...]) -> str:
        """Run a call. A refusal comes back as an error of SQLSTATE PH409 (PH404: no such
        reward or programme).

        Raises:
            psycopg.errors.UniqueViolation: the key was claimed meanwhile.
            psycopg.OperationalError: the connection broke.
        """
        try:
            with self.calls.cursor() as cursor:
                row = cursor.execute(statement, arguments, prepare=True).fetchone()
        except (psycopg.errors.UniqueViolation, psycopg.OperationalError):
            raise
        except psycopg.Error as error:
            raise _refusal(error) from None
        assert row is not None
        return str(row[0])


def _refusal(error: psycopg.Error) -> Exception:
    """The domain's error for a function's refusal; any other database error as it is."""
    message = error.diag.message_primary or ""
    if error.sqlstate == "PH404":
        return NotFoundError(message)
    if error.sqlstate != "PH409":
        return error
    detail = json.loads(error.diag.message_detail or "{}")
    return Refusal(
        message, detail.get("message", message), detail.get("held"), detail.get("needed"),
        detail.get("unit"),
    ).error()  # fmt: skip


def _terms(conn: Connection, code: str) -> tuple[RewardTerms, int, str | None]:
    """A reward's terms, its id and project.

    Raises:
        NotFoundError: no such reward.
    """
    w, p = t.rewards, t.programmes
    row = conn.execute(
        select(w, p.c.code.label("programme"))
        .select_from(w.outerjoin(p, p.c.id == w.c.programme_id))
        .where(w.c.code == code)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no reward {code!r}")
    terms = RewardTerms(
        code=row.code,
        kind=row.kind,
        price=int(row.price_g if row.price_g is not None else row.price_points),
        unit="g" if row.price_g is not None else "pt",
        programme=row.programme,
        per_citizen_limit=row.per_citizen_limit,
        valid_from=_aware(row.valid_from),
        valid_to=_aware(row.valid_to),
        stock=row.stock,
    )
    return terms, int(row.id), row.project


def _aware(moment: datetime | None) -> datetime | None:
    """A stored moment as an aware UTC one (SQLite gives it back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _claim(
    conn: Connection,
    subject: int,
    key: str,
    kind: str,
    digest: str,
    actor: str,
    at: datetime,
    reward_id: int | None = None,
) -> int | Outcome:
    """Claim an idempotency key for a new operation (its id), or answer a key used before with
    its first answer.

    Raises:
        RefusedError: `idempotency_conflict`, the key was used for another request.
    """
    values = {"s": subject, "k": key, "kind": kind, "d": digest, "r": reward_id, "a": actor}
    claimed = conn.execute(_CLAIM, {**values, "at": at}).scalar()
    if claimed is not None:
        return int(claimed)
    operation, stored_digest, stored_kind, result = conn.execute(
        _STORED, {"s": subject, "k": key}
    ).one()
    refused = rules.replay_refused(stored_digest, digest)
    if refused is not None:
        raise refused.error()
    return Outcome(int(operation), stored_kind, json.loads(result), replayed=True)


def _done(conn: Connection, operation: int, kind: str, result: dict[str, Any]) -> Outcome:
    """Record an operation's result and answer with it."""
    conn.execute(_RESULT, {"r": json.dumps(result, sort_keys=True), "o": operation})
    return Outcome(operation, kind, result)


def _take_one(
    conn: Connection, terms: RewardTerms, reward_id: int, operation: int
) -> tuple[int, str | int | None]:
    """Take one unit of a reward (a coupon's next code; else from its first part with one
    left) and the account of the part paid into, with what was handed out: the code, or the
    part's number.

    Raises:
        RefusedError: `out_of_stock`.
    """
    parts = conn.execute(_PARTS, {"r": reward_id}).all()
    if terms.kind == "coupon":
        code = conn.execute(_CODE, {"r": reward_id}).one_or_none()
        if code is None:
            raise rules.out_of_stock(terms).error()
        conn.execute(_HAND_CODE, {"o": operation, "r": reward_id, "n": code.ordinal})
        # The price is paid into the part the operation's number points at.
        return int(parts[operation % len(parts)].account_id), str(code.code)
    for part in parts:
        if part.allotted is None or part.taken < part.allotted:
            number = int(part.next_number)
            conn.execute(_TAKE, {"r": reward_id, "s": part.shard, "next": rules.after(number)})
            return int(part.account_id), number
    raise rules.out_of_stock(terms).error()


def _about(conn: Connection, entry: int) -> str:
    """The pseudonym of the citizen an entry gives grams or points back to when reversed: a
    gift's receiver, else the one citizen the transfer moved grams to or from.

    Raises:
        NotFoundError: no entry of a citizen's account has this id.
    """
    pseudonym = conn.execute(
        text(
            "select s.pseudonym from transfers x "
            "join accounts a on a.id in (x.debit_account_id, x.credit_account_id) "
            "join subjects s on s.id = coalesce(a.subject_id, a.owner_id) "
            "where x.id = :e "
            "order by case when x.kind = 'transfer' and a.id = x.credit_account_id "
            "then 0 else 1 end, a.id limit 1"
        ),
        {"e": entry},
    ).scalar_one_or_none()
    if pseudonym is None:
        raise NotFoundError(f"no entry {entry} of a citizen's account")
    return str(pseudonym)


def _reverse_points(conn: Connection, entry: int, operation: int, at: datetime) -> list[int]:
    """The points a reversed credit earned go with it: the citizen gives them back to each
    programme (an award entry holds many citizens' points, so it is not mirrored)."""
    earned = conn.execute(
        text(
            "select p.code, w.points, r.subject_id from awards w "
            "join programmes p on p.id = w.programme_id "
            "join transfers x on x.id = w.credit_transfer_id "
            "join records r on r.seq = x.record_seq "
            "where w.credit_transfer_id = :e and w.points > 0 order by p.code"
        ),
        {"e": entry},
    ).all()
    posted = []
    for programme, points, subject_id in earned:
        account = accounts.points(conn, programme, [subject_id])[subject_id]
        source = accounts.shared(conn, "programme", f"programme:{programme}", "pt")
        posted.append(
            ledger.post(
                conn,
                "award_reversal",
                [(account, -int(points), True), (source, int(points), False)],
                at,
                operation=operation,
            )
        )
    return posted
