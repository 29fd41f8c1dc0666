"""The read side of the carbon market on SQL: batches, holdings, retirements, shortfalls and the
leaves a proof is built from (rows as dicts, in the order each method names)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from puhui.adapters.sql.market import leaf_hashes
from puhui.domain.market import CHUNK, chunked_proof

_BATCHES = (
    "select u.id, u.exchange, u.methodology, u.region, u.vintage, u.units, u.buffer_units, "
    "u.buffer_bp, u.first_serial, u.last_serial, u.leaves, u.root, u.certified_at, "
    "coalesce((select sum(d.shortfall_g) from buffer_draws d where d.batch_id = u.id), 0) "
    "as shortfall_g, coalesce((select sum(d.drawn_g) from buffer_draws d "
    "where d.batch_id = u.id), 0) as drawn_g from unit_batches u"
)


class SqlMarketReads:
    """Implements `service.ports.MarketReads`, one read transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def batches(self) -> list[dict[str, Any]]:
        """Every batch, oldest first, with what its buffer drew and could not cover."""
        with self.engine.connect() as conn:
            return _dicts(conn, _BATCHES + " order by u.id", {})

    def batch(self, batch_id: int) -> dict[str, Any] | None:
        """One batch."""
        with self.engine.connect() as conn:
            found = _dicts(conn, _BATCHES + " where u.id = :b", {"b": batch_id})
        return found[0] if found else None

    def batch_of_serial(self, exchange: str, number: int) -> int | None:
        """The batch a unit number of an exchange belongs to (numbers are the exchange's)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "select id from unit_batches where exchange = :e "
                    "and first_serial <= :n and last_serial >= :n"
                ),
                {"e": exchange, "n": number},
            ).scalar()
        return None if found is None else int(found)

    def blocks(self, batch_id: int | None = None, uscc: str | None = None) -> list[dict[str, Any]]:
        """The serial blocks (of one batch, or a company's, or all) with their holder, lowest
        numbers first."""
        where = " where 1 = 1"
        where += "" if batch_id is None else " and k.batch_id = :b"
        where += "" if uscc is None else " and c.uscc = :u"
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select k.batch_id, k.first, k.last, k.holder, c.uscc, c.name, k.retirement_id, "
                "k.node "
                "from unit_blocks k left join companies c on c.id = k.company_id"
                + where
                + " order by k.batch_id, k.first",
                {"b": batch_id, "u": uscc},
            )

    def companies(self, uscc: str | None = None) -> list[dict[str, Any]]:
        """Every company (or the one with this code), with the units it holds and has retired."""
        where = "" if uscc is None else " where c.uscc = :u"
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select c.id, c.uscc, c.name, c.created_at, "
                "coalesce((select sum(k.last - k.first + 1) from unit_blocks k "
                "where k.company_id = c.id and k.holder = 'company'), 0) as held, "
                "coalesce((select sum(k.last - k.first + 1) from unit_blocks k "
                "where k.company_id = c.id and k.holder = 'retired'), 0) as retired "
                "from companies c" + where + " order by c.uscc",
                {"u": uscc},
            )

    def company(self, uscc: str) -> dict[str, Any] | None:
        """One company, by its code."""
        found = self.companies(uscc)
        return found[0] if found else None

    def retirements(self, retirement: int | None = None) -> list[dict[str, Any]]:
        """Retirements (one, or all, latest first) with their company."""
        where = "" if retirement is None else " where r.id = :r"
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select r.id, r.operation_id, r.units, r.beneficiary, r.purpose, r.at, c.uscc, "
                "c.name from unit_retirements r join companies c on c.id = r.company_id"
                + where
                + " order by r.id desc",
                {"r": retirement},
            )

    def trades(self) -> list[dict[str, Any]]:
        """Sales of units by the exchange, latest first."""
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select x.operation_id, x.units, x.unit_price_fen, x.at, c.uscc, c.name "
                "from unit_trades x join companies c on c.id = x.company_id "
                "order by x.operation_id desc",
                {},
            )

    def moves(self, operation: int) -> list[dict[str, Any]]:
        """The moves of units an operation made."""
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select batch_id, first, last, kind from unit_moves where operation_id = :o "
                "order by first",
                {"o": operation},
            )

    def draws(self) -> list[dict[str, Any]]:
        """Reversals of certified credits, latest first: what each drew and its shortfall."""
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select d.id, d.operation_id, d.record_seq, d.batch_id, d.grams, d.drawn_g, "
                "d.shortfall_g, d.at from buffer_draws d order by d.id desc",
                {},
            )

    def pool(self) -> list[dict[str, Any]]:
        """What each certification pool holds, waiting for the next batch."""
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select a.code, coalesce(b.balance_g, 0) as grams from accounts a "
                "left join balances b on b.account_id = a.id where a.kind = 'pool' "
                "order by a.code",
                {},
            )

    def credit_batches(self, pseudonym: str, entry: int) -> list[dict[str, Any]] | None:
        """The batches a citizen's credit is in, with its leaf there (position, grams, receipt);
        None when the entry is not a credit of this citizen."""
        with self.engine.connect() as conn:
            record = conn.execute(
                text(
                    "select r.seq from transfers x left join transfers h on h.id = x.reverses "
                    "join records r on r.seq = coalesce(x.record_seq, h.record_seq) "
                    "join subjects s on s.id = r.subject_id "
                    "where x.id = :e and x.kind in ('credit', 'release') and s.pseudonym = :p"
                ),
                {"e": entry, "p": pseudonym},
            ).scalar()
            if record is None:
                return None
            return _dicts(
                conn,
                "select c.batch_id, c.position, c.grams, r.record_id, p.code as platform "
                "from batch_credits c join records r on r.seq = c.record_seq "
                "join platforms p on p.id = r.platform_id where c.record_seq = :r "
                "order by c.batch_id",
                {"r": record},
            )

    def audit_path(self, batch_id: int, index: int) -> tuple[bytes, list[bytes]]:
        """The hash of a batch's leaf at `index` and its audit path: from the run of
        `domain.market.CHUNK` leaves it is in and the runs' stored roots."""
        run = index // CHUNK
        with self.engine.connect() as conn:
            hashes = leaf_hashes(conn, batch_id, run * CHUNK, run * CHUNK + CHUNK - 1)
            roots = [
                bytes.fromhex(h)
                for h in conn.execute(
                    text("select hash from batch_nodes where batch_id = :b order by chunk"),
                    {"b": batch_id},
                ).scalars()
            ]
        return hashes[index % CHUNK], chunked_proof(hashes, roots, index)

    def leaves(self, batch_id: int) -> list[dict[str, Any]]:
        """A batch's credits as its leaves commit to them: platform, record id, grams."""
        with self.engine.connect() as conn:
            return _dicts(
                conn,
                "select c.position, p.code as platform, r.record_id, c.grams "
                "from batch_credits c join records r on r.seq = c.record_seq "
                "join platforms p on p.id = r.platform_id where c.batch_id = :b "
                "order by c.position",
                {"b": batch_id},
            )


# Columns that are moments: SQLite gives them back as text, naive in UTC.
_MOMENTS = ("at", "certified_at", "created_at")


def _dicts(conn: Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(text(sql), params).all()]
    for row in rows:
        for name in _MOMENTS:
            value = row.get(name)
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            if isinstance(value, datetime) and value.tzinfo is None:
                row[name] = value.replace(tzinfo=UTC)
    return rows
