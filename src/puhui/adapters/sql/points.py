"""Points programmes' jobs on SQL: awarding the credits not yet awarded, expiring what is left of
the awards past their validity. Each run is one transaction and one ledger entry; run again at
once, it finds nothing to do."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, bindparam, insert, select, text

from puhui.adapters.sql import accounts, ledger
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.ledger import Leg
from puhui.domain.accounts import points_earned

# Credits, and the releases of held records (their record is the hold's they settle).
_PENDING = (
    "select x.id, r.subject_id, x.amount from transfers x "
    "left join transfers h on x.kind = 'release' and h.id = x.reverses "
    "join records r on r.seq = coalesce(x.record_seq, h.record_seq) "
    "where (x.kind = 'credit' or x.kind = 'release') and x.created_at >= :starts {platform} "
    "and not exists (select 1 from awards w "
    "where w.programme_id = :prog and w.credit_transfer_id = x.id) order by x.id"
)
_LAPSED = text(
    "select a.id, "
    "(select coalesce(sum(x.amount), 0) from transfers x "
    "where x.credit_account_id = a.id and x.expires_at <= :at) as lapsed, "
    "(select coalesce(sum(x.amount), 0) from transfers x "
    "where x.debit_account_id = a.id and x.kind <> 'expire') as used, "
    "(select coalesce(sum(x.amount), 0) from transfers x "
    "where x.debit_account_id = a.id and x.kind = 'expire') as expired "
    "from accounts a where a.kind = 'points' and substr(a.code, 1, :n) = :prefix "
    "order by a.id"
).bindparams(bindparam("at", type_=t.transfers.c.expires_at.type))


class SqlPoints:
    """Implements `service.ports.Points` on a database engine, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def award(self, programme: str, at: datetime) -> tuple[int, int]:
        """One award entry: each citizen's points for the credits not yet awarded, each
        credit's points (floored) recorded in `awards`; (points, credits) awarded."""
        with self.engine.begin() as conn:
            prog = accounts.programme_row(conn, programme)
            platform = "and r.platform_id = :platform" if prog["platform_id"] else ""
            pending = conn.execute(
                text(_PENDING.format(platform=platform)).bindparams(
                    bindparam("starts", type_=t.transfers.c.created_at.type)
                ),
                {"starts": prog["starts_at"], "platform": prog["platform_id"], "prog": prog["id"]},
            ).all()
            if not pending:
                return 0, 0
            rate = Decimal(str(prog["points_per_kg"]))
            per_subject: dict[int, int] = defaultdict(int)
            earned = []
            for credit_id, subject_id, grams in pending:
                points = points_earned(int(grams), rate)
                earned.append((credit_id, subject_id, points))
                per_subject[subject_id] += points
            per_subject = {s: n for s, n in per_subject.items() if n > 0}
            paid: dict[int, int] = {}  # citizen → the transfer of the run that paid them
            if per_subject:
                owned = accounts.points(conn, programme, sorted(per_subject))
                source = accounts.shared(conn, "programme", f"programme:{programme}", "pt")
                total = sum(per_subject.values())
                legs: list[Leg] = [(owned[s], n, False) for s, n in per_subject.items()]
                days = prog["expiry_days"]
                run = ledger.post(
                    conn,
                    "award",
                    [*legs, (source, -total, False)],
                    at,
                    expires_at=at + timedelta(days=days) if days else None,
                )
                owner = {account: s for s, account in owned.items()}
                x = t.transfers
                paid = {
                    owner[account]: int(transfer_id)
                    for transfer_id, account in conn.execute(
                        select(x.c.id, x.c.credit_account_id).where(
                            (x.c.id == run) | (x.c.linked_to == run)
                        )
                    ).all()
                }
            conn.execute(
                insert(t.awards),
                [
                    {
                        "programme_id": prog["id"],
                        "credit_transfer_id": credit_id,
                        "award_transfer_id": paid[subject_id] if points else None,
                        "points": points,
                    }
                    for credit_id, subject_id, points in earned
                ],
            )
        return sum(per_subject.values()), len(pending)

    def expire(self, programme: str, at: datetime) -> tuple[int, int]:
        """Points are spent oldest first; what is left of the awards whose validity has ended,
        once everything spent is counted against them, expires; (points, accounts)."""
        prefix = f"points:{programme}:"
        with self.engine.begin() as conn:
            rows = conn.execute(_LAPSED, {"at": at, "prefix": prefix, "n": len(prefix)}).all()
            due = [
                (a, max(0, int(lapsed) - int(used)) - int(expired))
                for a, lapsed, used, expired in rows
            ]
            due = [(a, n) for a, n in due if n > 0]
            if not due:
                return 0, 0
            sink = accounts.shared(conn, "expired", f"expired:{programme}", "pt")
            legs: list[Leg] = [(account, -points, True) for account, points in due]
            total = sum(points for _, points in due)
            ledger.post(conn, "expire", [*legs, (sink, total, False)], at)
        return sum(n for _, n in due), len(due)
