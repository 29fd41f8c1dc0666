"""Ledger audit of the carbon market: each invariant of `domain.market` as a set-based query
over the stored rows (one, the batches' Merkle roots, recomputed in Python), naming what breaks
it. `adapters/sql/audit.py` runs them with the ledger's own checks."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, text

from puhui.adapters.sql.market import leaf_hashes
from puhui.domain import market as rules
from puhui.domain.methodology import Catalogue

UNIT = str(rules.UNIT_G)

QUERIES: dict[str, str] = {
    # Certified grams: each pool holds what its credits brought less what its batches and
    # reversals took; its `certify` transfers brought exactly its credits.
    "pool_mismatch": (
        "select a.code from accounts a "
        "left join balances b on b.account_id = a.id "
        "left join (select pool_account_id, sum(grams) as g from pool_credits "
        "group by pool_account_id) p on p.pool_account_id = a.id "
        "left join (select pc.pool_account_id, sum(c.grams) as g from batch_credits c "
        "join pool_credits pc on pc.record_seq = c.record_seq group by pc.pool_account_id) u "
        "on u.pool_account_id = a.id "
        "left join (select pc.pool_account_id, sum(d.grams) as g from buffer_draws d "
        "join pool_credits pc on pc.record_seq = d.record_seq where d.batch_id is null "
        "group by pc.pool_account_id) d on d.pool_account_id = a.id "
        "left join (select credit_account_id, sum(amount) as g from transfers "
        "where kind = 'certify' group by credit_account_id) x on x.credit_account_id = a.id "
        "left join (select account_id, sum(posted_g) as g from restatement_postings "
        "group by account_id) rs on rs.account_id = a.id "
        "where a.kind = 'pool' and (coalesce(b.balance_g, 0) <> "
        "coalesce(p.g, 0) - coalesce(u.g, 0) - coalesce(d.g, 0) + coalesce(rs.g, 0) "
        "or coalesce(x.g, 0) <> coalesce(p.g, 0)) "
        "union select 'pool_credits:' || cast(pc.record_seq as varchar(20)) from pool_credits pc "
        "left join accounts a on a.id = pc.pool_account_id where a.kind is null or a.kind <> 'pool'"
    ),
    # A credit certified is a credited record's whole credit, of its citizen, never reversed
    # on the citizen's account, and no more of it is in batches and pool reversals than it has.
    "credit_certified_wrongly": (
        "select cast(p.record_seq as varchar(20)) from pool_credits p "
        "left join records r on r.seq = p.record_seq "
        "left join (select record_seq, sum(grams) as g from batch_credits group by record_seq) c "
        "on c.record_seq = p.record_seq "
        "left join (select record_seq, sum(grams) as g from buffer_draws where batch_id is null "
        "group by record_seq) d on d.record_seq = p.record_seq "
        "where r.seq is null or r.status <> 'credited' or r.reduction_g <> p.grams "
        "or r.subject_id <> p.subject_id "
        "or coalesce(c.g, 0) + coalesce(d.g, 0) > p.grams "
        "or exists (select 1 from transfers x join transfers y on y.reverses = x.id "
        "where x.record_seq = p.record_seq and x.kind = 'credit') "
        "union select cast(c.record_seq as varchar(20)) from batch_credits c "
        "left join pool_credits p on p.record_seq = c.record_seq where p.record_seq is null"
    ),
    # A batch's units are backed: units × 1 000 000 g is what its credits gave and what the
    # pool moved into its units and buffer accounts; those hold it, less the buffer's draws. (A
    # batch another node issued is backed there: it has no credits and no accounts here.)
    "units_not_backed": (
        "select cast(u.id as varchar(20)) from unit_batches u "
        "left join (select batch_id, sum(grams) as g, count(*) as n from batch_credits "
        "group by batch_id) c on c.batch_id = u.id "
        "left join (select credit_account_id, sum(amount) as g from transfers "
        "where kind = 'issue_units' group by credit_account_id) iu "
        "on iu.credit_account_id = u.units_account_id "
        "left join (select credit_account_id, sum(amount) as g from transfers "
        "where kind = 'issue_units' group by credit_account_id) ib "
        "on ib.credit_account_id = u.buffer_account_id "
        "left join balances bu on bu.account_id = u.units_account_id "
        "left join balances bb on bb.account_id = u.buffer_account_id "
        "left join (select batch_id, sum(drawn_g) as g from buffer_draws "
        "where batch_id is not null group by batch_id) d on d.batch_id = u.id "
        "left join (select account_id, sum(posted_g) as g from restatement_postings "
        "group by account_id) rs on rs.account_id = u.buffer_account_id "
        "where u.imported and (c.n is not null or u.units_account_id is not null) "
        f"or not u.imported and (coalesce(c.g, 0) <> u.units * {UNIT} "
        "or coalesce(c.n, 0) <> u.leaves "
        f"or coalesce(iu.g, 0) + coalesce(ib.g, 0) <> u.units * {UNIT} "
        f"or coalesce(bu.balance_g, 0) <> (u.units - u.buffer_units) * {UNIT} "
        f"or coalesce(bb.balance_g, 0) <> u.buffer_units * {UNIT} - coalesce(d.g, 0) "
        "+ coalesce(rs.g, 0) "
        "or u.units_account_id = u.buffer_account_id) "
        "union select a.code from accounts a where a.kind in ('units', 'buffer') "
        "and not exists (select 1 from unit_batches u where u.units_account_id = a.id "
        "or u.buffer_account_id = a.id)"
    ),
    # The serial blocks of every holding, retirement, buffer, cancellation and of the units
    # abroad partition each batch's numbers, and the numbers of an exchange's batches never
    # overlap.
    "serials_not_partitioned": (
        "select cast(u.id as varchar(20)) from unit_batches u "
        "left join (select batch_id, sum(last - first + 1) as n, min(first) as lo, "
        "max(last) as hi from unit_blocks group by batch_id) k on k.batch_id = u.id "
        "where k.n is null or k.n <> u.units or k.lo <> u.first_serial "
        "or k.hi <> u.last_serial "
        "union select cast(a.batch_id as varchar(20)) from unit_blocks a join unit_blocks b "
        "on b.batch_id = a.batch_id and b.id > a.id and b.first <= a.last and a.first <= b.last "
        "union select cast(a.id as varchar(20)) from unit_batches a join unit_batches b "
        "on b.id > a.id and b.exchange = a.exchange and b.first_serial <= a.last_serial "
        "and a.first_serial <= b.last_serial"
    ),
    # Who holds how many units of each batch is what the moves, replayed, leave there.
    "holdings_mismatch": (
        "select cast(h.batch_id as varchar(20)) || ':' || h.holder || ':' "
        "|| coalesce(cast(h.company as varchar(20)), '') from ("
        "select batch_id, holder, company_id as company, sum(last - first + 1) as n "
        "from unit_blocks group by batch_id, holder, company_id union all "
        "select batch_id, to_holder, to_company, -sum(last - first + 1) from unit_moves "
        "group by batch_id, to_holder, to_company union all "
        "select batch_id, from_holder, from_company, sum(last - first + 1) from unit_moves "
        "where from_holder is not null group by batch_id, from_holder, from_company) h "
        "group by h.batch_id, h.holder, h.company having sum(h.n) <> 0"
    ),
    # Units move only as the market allows: issued to the exchange or the buffer, sold by the
    # exchange to a company, transferred between companies, retired by their holder, cancelled
    # out of the buffer; sent by a company to another node, received from one by a company,
    # returned to the company that sent them when the registry refused; another node's batch
    # recognised abroad, whole, when its first units come; a retired or cancelled unit never
    # moves again; each trade and retirement moved the units it says, and a retirement's units
    # are retired under it.
    "unit_move_invalid": (
        "select cast(m.id as varchar(20)) from unit_moves m where not ("
        "(m.kind = 'issue' and m.from_holder is null and m.to_holder in ('exchange', 'buffer')) "
        "or (m.kind = 'sell' and m.from_holder = 'exchange' and m.to_holder = 'company' "
        "and m.to_company is not null) "
        "or (m.kind = 'transfer' and m.from_holder = 'company' and m.to_holder = 'company' "
        "and m.from_company <> m.to_company) "
        "or (m.kind = 'retire' and m.from_holder = 'company' and m.to_holder = 'retired' "
        "and m.from_company = m.to_company) "
        "or (m.kind = 'cancel' and m.from_holder = 'buffer' and m.to_holder = 'cancelled') "
        "or (m.kind = 'export' and m.from_holder = 'company' and m.to_holder = 'abroad' "
        "and m.node is not null) "
        "or (m.kind in ('import', 'return') and m.from_holder = 'abroad' "
        "and m.to_holder = 'company' and m.to_company is not null and m.node is not null) "
        "or (m.kind = 'recognise' and m.from_holder is null and m.to_holder = 'abroad' "
        "and m.node is not null and exists (select 1 from unit_batches u "
        "where u.id = m.batch_id and u.imported and u.first_serial = m.first "
        "and u.last_serial = m.last))) "
        "union select 'trade:' || cast(x.operation_id as varchar(20)) from unit_trades x "
        "left join (select operation_id, sum(last - first + 1) as n from unit_moves "
        "where kind = 'sell' group by operation_id) m on m.operation_id = x.operation_id "
        "where coalesce(m.n, 0) <> x.units "
        "union select 'retirement:' || cast(r.id as varchar(20)) from unit_retirements r "
        "left join (select operation_id, sum(last - first + 1) as n from unit_moves "
        "where kind = 'retire' group by operation_id) m on m.operation_id = r.operation_id "
        "left join (select retirement_id, sum(last - first + 1) as n, "
        "min(company_id) as lo, max(company_id) as hi from unit_blocks "
        "where holder = 'retired' group by retirement_id) k on k.retirement_id = r.id "
        "where coalesce(m.n, 0) <> r.units or coalesce(k.n, 0) <> r.units "
        "or k.lo <> r.company_id or k.hi <> r.company_id "
        # Each transfer to another node is units a company sent there.
        "union select 'send:' || cast(f.transfer as varchar(20)) from federation_sends f "
        "where not exists (select 1 from unit_moves m where m.operation_id = f.operation_id "
        "and m.kind = 'export' and m.batch_id = f.batch_id and m.first = f.first "
        "and m.last = f.last and m.from_company = f.company_id and m.node = f.to_node)"
    ),
}


def altered_roots(conn: Connection, catalogue: Catalogue) -> Iterator[str]:
    """The batches whose stored Merkle root, or a stored root of a run of its leaves (which
    proofs are built from), is not the one of their credits as stored."""
    del catalogue
    for batch, root, leaves in conn.execute(
        text("select id, root, leaves from unit_batches where not imported order by id")
    ).all():
        hashes = leaf_hashes(conn, int(batch))
        runs = [r.hex() for r in rules.chunk_roots(hashes)]
        stored = list(
            conn.execute(
                text("select hash from batch_nodes where batch_id = :b order by chunk"),
                {"b": batch},
            ).scalars()
        )
        if (
            len(hashes) != int(leaves)
            or rules.merkle_root(hashes).hex() != root
            or (stored != runs)
        ):
            yield str(batch)
