"""rewards in parts: a reward's stock, and the account its price is paid into, kept in up to
16 parts, so that redemptions of one reward at the same moment do not queue on one row; what a
reward handed out is derived, no longer kept in its row; one database call per citizen's
operation on PostgreSQL

Each reward gets its parts (`reward_stock`, as `domain.accounts.stock_shards` splits a stock):
a limited stock in up to 16 parts of consecutive numbers, an unlimited one (and a coupon, whose
stock is its codes) in 16 parts each numbering its own blocks. What was handed out before is
carried into the parts: a limited stock's parts are taken from in order, and an unlimited
stock's first part holds what was handed out, so the numbers handed out are still 1 to
`issued`. The reward's account becomes its first part's, and the other parts get
accounts of their own (`reward:<code>#<part>`). A coupon's codes remember the redemption they
were handed to. `rewards.remaining` and `rewards.issued` are dropped: they are what the parts
(or the codes) say.

On PostgreSQL, `puhui_redeem`, `puhui_retire` and `puhui_give` do each operation in one call
(`adapters.sql.operations` says the same in Python, for SQLite): claim the idempotency key,
check, take from the account, pay into the other, post the transfer, take from the stock and
record the result; a refusal raises SQLSTATE PH409 (PH404: no such reward or programme), its
code the message and its figures the detail, and the transaction changes nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As `domain.accounts` says them when this revision was written.
SHARDS = 16
NUMBER_BLOCK = 10**9


def _parts(stock: int | None, kind: str) -> list[tuple[int, int | None, int]]:
    """(part, allotted, first number) of a reward's stock: a limited stock's parts number 1 to
    `stock` between them, an unlimited one's each their own blocks of NUMBER_BLOCK."""
    if kind == "coupon" or stock is None:
        return [(k, None, k * NUMBER_BLOCK + 1) for k in range(SHARDS)]
    parts = max(1, min(SHARDS, stock))
    out: list[tuple[int, int | None, int]] = []
    first = 1
    for k in range(parts):
        allotted = stock // parts + (k < stock % parts)
        out.append((k, allotted, first))
        first += allotted
    return out


def upgrade() -> None:
    op.create_table(
        "reward_stock",
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False, comment="the account paid into"),
        sa.Column(
            "allotted",
            sa.Integer(),
            nullable=True,
            comment="units it may hand out; null: unlimited",
        ),
        sa.Column(
            "taken", sa.Integer(), nullable=False, server_default=sa.text("0"), comment="handed out"
        ),
        sa.Column(
            "next_number",
            sa.BigInteger(),
            nullable=False,
            comment="the number it hands out next",
        ),
        sa.CheckConstraint(
            "taken >= 0 and (allotted is null or taken <= allotted)",
            name=op.f("ck_reward_stock_taken"),
        ),
        sa.PrimaryKeyConstraint("reward_id", "shard", name=op.f("pk_reward_stock")),
        postgresql_with={"fillfactor": 70},
    )
    with op.batch_alter_table("reward_codes") as batch:
        batch.add_column(
            sa.Column(
                "operation_id",
                sa.Integer(),
                nullable=True,
                comment="the redemption it was handed to",
            )
        )
    op.create_index(
        "ix_reward_codes_unclaimed",
        "reward_codes",
        ["reward_id", "ordinal"],
        sqlite_where=sa.text("operation_id is null"),
        postgresql_where=sa.text("operation_id is null"),
    )
    _carry_stock()
    # Written by every operation, and read by no query: an operation names its transfers in
    # its result, and a citizen's redemptions of a reward are found among theirs by the
    # unique index of (citizen, key).
    op.drop_index("ix_transfers_operation_id", table_name="transfers")
    op.drop_index("ix_operations_subject_id_reward_id", table_name="operations")
    with op.batch_alter_table("rewards") as batch:
        batch.drop_constraint(batch.f("ck_rewards_stock"), type_="check")
        batch.drop_column("remaining")
        batch.drop_column("issued")
        batch.create_check_constraint("stock", "stock is null or stock >= 0")
        batch.alter_column(
            "stock",
            existing_type=sa.Integer(),
            existing_nullable=True,
            comment="made available so far (a coupon: its codes); null: unlimited",
            existing_comment="made available so far; null: unlimited",
        )
    if op.get_bind().dialect.name == "postgresql":
        for statement in FUNCTIONS:
            op.execute(statement)


def _carry_stock() -> None:
    conn = op.get_bind()
    rewards = conn.execute(
        sa.text(
            "select id, code, kind, stock, remaining, issued, "
            "case when price_g is null then 'pt' else 'g' end from rewards order by id"
        )
    ).all()
    for reward_id, code, kind, stock, _remaining, issued, unit in rewards:
        left = int(issued)
        for part, allotted, first in _parts(stock, kind):
            account = f"reward:{code}" if part == 0 else f"reward:{code}#{part}"
            conn.execute(
                sa.text(
                    "insert into accounts (kind, code, unit) values ('reward', :c, :u) "
                    "on conflict (code) do nothing"
                ),
                {"c": account, "u": unit},
            )
            account_id = conn.execute(
                sa.text("select id from accounts where code = :c"), {"c": account}
            ).scalar_one()
            if kind == "coupon":
                taken, next_number = 0, first
            elif allotted is not None:  # consecutive numbers, handed out in order
                taken = min(allotted, left)
                left -= taken
                next_number = first + taken
            else:  # the first part holds what was handed out (numbered 1 on) and goes on
                taken = left if part == 0 else 0
                next_number = first + taken
            conn.execute(
                sa.text(
                    "insert into reward_stock (reward_id, shard, account_id, allotted, taken, "
                    "next_number) values (:r, :s, :a, :al, :t, :n)"
                ),
                {
                    "r": reward_id,
                    "s": part,
                    "a": account_id,
                    "al": allotted,
                    "t": taken,
                    "n": next_number,
                },
            )
        if kind == "coupon":
            handed = conn.execute(
                sa.text(
                    "select id, result from operations where reward_id = :r and kind = 'redeem'"
                ),
                {"r": reward_id},
            ).all()
            for operation_id, result in handed:
                conn.execute(
                    sa.text(
                        "update reward_codes set operation_id = :o "
                        "where reward_id = :r and code = :c"
                    ),
                    {"o": operation_id, "r": reward_id, "c": json.loads(result)["coupon_code"]},
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in FUNCTION_NAMES:
            op.execute(f"drop function if exists {name}")
    with op.batch_alter_table("rewards") as batch:
        batch.add_column(sa.Column("remaining", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "issued",
                sa.Integer(),
                nullable=False,
                server_default=sa.text("0"),
                comment="redeemed so far",
            )
        )
    op.execute(
        "update rewards set issued = (select count(*) from operations o "
        "where o.reward_id = rewards.id and o.kind = 'redeem')"
    )
    op.execute(
        "update rewards set remaining = case when kind = 'coupon' then "
        "(select count(*) from reward_codes c where c.reward_id = rewards.id "
        "and c.operation_id is null) when stock is null then null else stock - issued end"
    )
    with op.batch_alter_table("rewards") as batch:
        batch.drop_constraint(batch.f("ck_rewards_stock"), type_="check")
        batch.create_check_constraint(
            "stock",
            "(stock is null and remaining is null) or (remaining >= 0 and remaining <= stock)",
        )
        batch.alter_column(
            "stock",
            existing_type=sa.Integer(),
            existing_nullable=True,
            comment="made available so far; null: unlimited",
            existing_comment="made available so far (a coupon: its codes); null: unlimited",
        )
    op.drop_index("ix_reward_codes_unclaimed", table_name="reward_codes")
    with op.batch_alter_table("reward_codes") as batch:
        batch.drop_column("operation_id")
    # The parts' accounts stay: the transfers paid into them are the ledger's, never removed.
    op.drop_table("reward_stock")
    op.create_index("ix_operations_subject_id_reward_id", "operations", ["subject_id", "reward_id"])
    op.create_index(
        "ix_transfers_operation_id",
        "transfers",
        ["operation_id"],
        sqlite_where=sa.text("operation_id is not null"),
        postgresql_where=sa.text("operation_id is not null"),
    )


# The functions of the operations on PostgreSQL. A refusal raises; the caller's transaction,
# the operation's own, then stores nothing. An operation's row is written last, with its result
# (its id drawn first, for its transfers): a request under a key used before is answered from
# the stored row, and of two under one new key at the same moment, the second to commit fails
# on the key's unique index and, sent again, is answered with the first's result.
FUNCTIONS = [
    """
create function puhui_refuse(p_code text, p_message text, p_held bigint default null,
                             p_needed bigint default null, p_unit text default null)
returns void language plpgsql as $$
begin
    raise exception using errcode = 'PH409', message = p_code,
        detail = json_build_object('message', p_message, 'held', p_held, 'needed', p_needed,
                                   'unit', p_unit)::text;
end $$
""",
    """
-- A citizen's id, registered if new.
create function puhui_subject(p_pseudonym text) returns integer language plpgsql as $$
declare
    v_subject integer;
begin
    select id into v_subject from subjects where pseudonym = p_pseudonym;
    if not found then
        insert into subjects (pseudonym) values (p_pseudonym)
        on conflict (pseudonym) do nothing returning id into v_subject;
        if v_subject is null then
            select id into v_subject from subjects where pseudonym = p_pseudonym;
        end if;
    end if;
    return v_subject;
end $$
""",
    """
-- The first answer to a key used before (null for a new key), or idempotency_conflict when
-- it was used for another request.
create function puhui_replay(p_subject integer, p_key text, p_digest text)
returns text language plpgsql as $$
declare
    v_stored operations%rowtype;
begin
    select * into v_stored from operations
     where subject_id = p_subject and idempotency_key = p_key;
    if not found then
        return null;
    end if;
    if v_stored.request_digest <> p_digest then
        perform puhui_refuse('idempotency_conflict',
                             'this idempotency key was used for another request');
    end if;
    return json_build_object('operation', v_stored.id, 'kind', v_stored.kind,
                             'result', v_stored.result::json, 'replayed', true)::text;
end $$
""",
    """
-- Add to an account's balance (its row made on first use).
create function puhui_add(p_account integer, p_amount bigint) returns void
language plpgsql as $$
begin
    update balances set balance_g = balance_g + p_amount where account_id = p_account;
    if not found then
        insert into balances (account_id, balance_g) values (p_account, p_amount)
        on conflict (account_id) do update
        set balance_g = balances.balance_g + excluded.balance_g;
    end if;
end $$
""",
    """
-- Record an operation, with its result, and answer with it.
create function puhui_record(p_op integer, p_subject integer, p_key text, p_kind text,
                             p_digest text, p_reward integer, p_actor text, p_at timestamptz,
                             p_result jsonb)
returns text language plpgsql as $$
begin
    insert into operations (id, subject_id, idempotency_key, kind, request_digest, reward_id,
                            actor, result, created_at)
    values (p_op, p_subject, p_key, p_kind, p_digest, p_reward, p_actor, p_result::text, p_at);
    return json_build_object('operation', p_op, 'kind', p_kind, 'result', p_result,
                             'replayed', false)::text;
end $$
""",
    """
create function puhui_redeem(p_pseudonym text, p_reward text, p_key text, p_digest text,
                             p_actor text, p_at timestamptz)
returns text language plpgsql
-- Plans kept between calls (the pool's connections plan every statement of their own).
set plan_cache_mode = auto as $$
declare
    v_subject integer;
    v_citizen integer;
    v_reward_id integer;
    v_kind text;
    v_price_g bigint;
    v_price_points bigint;
    v_programme_id integer;
    v_limit integer;
    v_from timestamptz;
    v_to timestamptz;
    v_project text;
    v_stored operations%rowtype;
    v_op integer;
    v_unit text;
    v_price bigint;
    v_payer integer;
    v_held bigint;
    v_before bigint;
    v_sink integer;
    v_number bigint;
    v_code text;
    v_entry bigint;
    v_result text;
begin
    select s.id, a.id into v_subject, v_citizen from subjects s
      left join accounts a on a.subject_id = s.id where s.pseudonym = p_pseudonym;
    if v_subject is null then  -- a citizen never credited: no account, so nothing to pay with
        v_subject := puhui_subject(p_pseudonym);
    end if;
    select id, kind, price_g, price_points, programme_id, per_citizen_limit, valid_from,
           valid_to, project
      into v_reward_id, v_kind, v_price_g, v_price_points, v_programme_id, v_limit, v_from,
           v_to, v_project
      from rewards where code = p_reward;
    if not found then
        raise exception using errcode = 'PH404', message = format('no reward %L', p_reward);
    end if;
    -- A key used before: the first answer again, or idempotency_conflict for another request.
    select * into v_stored from operations
     where subject_id = v_subject and idempotency_key = p_key;
    if found then
        if v_stored.request_digest <> p_digest then
            perform puhui_refuse('idempotency_conflict',
                                 'this idempotency key was used for another request');
        end if;
        return '{"operation": ' || v_stored.id || ', "kind": "' || v_stored.kind
               || '", "replayed": true, "result": ' || v_stored.result || '}';
    end if;
    v_op := nextval('operations_id_seq');
    if (v_from is not null and p_at < v_from) or (v_to is not null and p_at >= v_to) then
        perform puhui_refuse('not_available', format('%s cannot be redeemed now', p_reward));
    end if;
    if v_price_g is not null then
        v_unit := 'g';
        v_price := v_price_g;
        v_payer := v_citizen;
    else
        v_unit := 'pt';
        v_price := v_price_points;
        select a.id into v_payer from accounts a join programmes p on p.id = v_programme_id
         where a.code = 'points:' || p.code || ':' || v_subject;
    end if;
    if v_limit is not null then
        -- The payer's row queues this citizen's operations: the count sees the ones before.
        perform 1 from balances where account_id = v_payer for update;
        select count(*) into v_before from operations
         where subject_id = v_subject and reward_id = v_reward_id and kind = 'redeem';
        if v_before >= v_limit then
            perform puhui_refuse('limit_reached',
                format('%s can be redeemed %s times per citizen', p_reward, v_limit));
        end if;
    end if;
    update balances set balance_g = balance_g - v_price
     where account_id = v_payer and balance_g >= v_price;
    if not found then
        v_held := coalesce((select balance_g from balances where account_id = v_payer), 0);
        perform puhui_refuse('insufficient_balance',
            format('%s costs %s %s; the account holds %s %s', p_reward, v_price, v_unit,
                   v_held, v_unit), v_held, v_price, v_unit);
    end if;
    -- One unit: from the first part with one left that no other redemption holds; failing
    -- that, wait for one that has. (An unlimited stock's part numbers blocks of 10^9, the
    -- next of its blocks 16 blocks further.)
    loop
        if v_kind = 'coupon' then
            with pick as materialized (
                select ordinal from reward_codes
                 where reward_id = v_reward_id and operation_id is null
                 order by ordinal limit 1 for update skip locked)
            update reward_codes c set operation_id = v_op from pick
             where c.reward_id = v_reward_id and c.ordinal = pick.ordinal
            returning c.code into v_code;
            exit when v_code is not null;
            perform 1 from reward_codes where reward_id = v_reward_id and operation_id is null;
            if not found then
                perform puhui_refuse('out_of_stock', format('%s is out of stock', p_reward));
            end if;
            with pick as materialized (
                select ordinal from reward_codes
                 where reward_id = v_reward_id and operation_id is null
                 order by ordinal limit 1 for update)
            update reward_codes c set operation_id = v_op from pick
             where c.reward_id = v_reward_id and c.ordinal = pick.ordinal
               and c.operation_id is null
            returning c.code into v_code;
            exit when v_code is not null;
        else
            with pick as materialized (
                select shard, next_number from reward_stock
                 where reward_id = v_reward_id and (allotted is null or taken < allotted)
                 order by shard limit 1 for update skip locked)
            update reward_stock s set taken = s.taken + 1,
                   next_number = s.next_number + 1 + case
                       when s.next_number % 1000000000 = 0 then 15000000000 else 0 end
              from pick
             where s.reward_id = v_reward_id and s.shard = pick.shard
            returning s.account_id, pick.next_number into v_sink, v_number;
            exit when v_sink is not null;
            perform 1 from reward_stock
             where reward_id = v_reward_id and (allotted is null or taken < allotted);
            if not found then
                perform puhui_refuse('out_of_stock', format('%s is out of stock', p_reward));
            end if;
            with pick as materialized (
                select shard, next_number from reward_stock
                 where reward_id = v_reward_id and (allotted is null or taken < allotted)
                 order by shard limit 1 for update)
            update reward_stock s set taken = s.taken + 1,
                   next_number = s.next_number + 1 + case
                       when s.next_number % 1000000000 = 0 then 15000000000 else 0 end
              from pick
             where s.reward_id = v_reward_id and s.shard = pick.shard
               and (s.allotted is null or s.taken < s.allotted)
            returning s.account_id, pick.next_number into v_sink, v_number;
            exit when v_sink is not null;
        end if;
    end loop;
    if v_kind = 'coupon' then
        -- The price is paid into the part the operation's number points at.
        select account_id into v_sink from reward_stock
         where reward_id = v_reward_id and shard = v_op % 16;
    end if;
    update balances set balance_g = balance_g + v_price where account_id = v_sink;
    if not found then
        insert into balances (account_id, balance_g) values (v_sink, v_price)
        on conflict (account_id) do update set balance_g = balances.balance_g + excluded.balance_g;
    end if;
    insert into transfers (kind, debit_account_id, credit_account_id, amount, operation_id,
                           created_at)
    values ('redeem', v_payer, v_sink, v_price, v_op, p_at)
    returning id into v_entry;
    v_result := (jsonb_build_object('reward', p_reward, 'kind', v_kind, 'unit', v_unit,
                                    'price', v_price, 'entry', v_entry)
                 || case when v_kind = 'coupon' then jsonb_build_object('coupon_code', v_code)
                         when v_kind = 'tree' then jsonb_build_object('tree_number', v_number,
                                                                      'project', v_project)
                         else jsonb_build_object('project', v_project) end)::text;
    insert into operations (id, subject_id, idempotency_key, kind, request_digest, reward_id,
                            actor, result, created_at)
    values (v_op, v_subject, p_key, 'redeem', p_digest, v_reward_id, p_actor, v_result, p_at);
    return '{"operation": ' || v_op || ', "kind": "redeem", "replayed": false, "result": '
           || v_result || '}';
end $$
""",
    """
create function puhui_retire(p_pseudonym text, p_grams bigint, p_footprint text, p_key text,
                             p_digest text, p_actor text, p_at timestamptz)
returns text language plpgsql
-- Plans kept between calls (the pool's connections plan every statement of their own).
set plan_cache_mode = auto as $$
declare
    v_subject integer;
    v_replay text;
    v_op integer;
    v_payer integer;
    v_held bigint;
    v_retired integer;
    v_entry bigint;
begin
    v_subject := puhui_subject(p_pseudonym);
    v_replay := puhui_replay(v_subject, p_key, p_digest);
    if v_replay is not null then
        return v_replay;
    end if;
    v_op := nextval('operations_id_seq');
    select id into v_payer from accounts where subject_id = v_subject;
    update balances set balance_g = balance_g - p_grams
     where account_id = v_payer and balance_g >= p_grams;
    if not found then
        v_held := coalesce((select balance_g from balances where account_id = v_payer), 0);
        perform puhui_refuse('insufficient_balance',
            format('retiring %s g takes them; the account holds %s g', p_grams, v_held),
            v_held, p_grams, 'g');
    end if;
    select id into v_retired from accounts where code = 'retired:' || v_subject;
    if not found then
        insert into accounts (kind, code, owner_id, unit)
        values ('retired', 'retired:' || v_subject, v_subject, 'g')
        on conflict (code) do nothing;
        select id into v_retired from accounts where code = 'retired:' || v_subject;
    end if;
    perform puhui_add(v_retired, p_grams);
    insert into transfers (kind, debit_account_id, credit_account_id, amount, operation_id,
                           created_at)
    values ('retire', v_payer, v_retired, p_grams, v_op, p_at)
    returning id into v_entry;
    return puhui_record(v_op, v_subject, p_key, 'retire', p_digest, null, p_actor, p_at,
        jsonb_build_object('retired_g', p_grams, 'entry', v_entry,
                           'footprint', p_footprint::jsonb));
end $$
""",
    """
create function puhui_give(p_pseudonym text, p_to text, p_amount bigint, p_programme text,
                           p_most bigint, p_per_day bigint, p_day_start timestamptz,
                           p_key text, p_digest text, p_actor text, p_at timestamptz)
returns text language plpgsql
-- Plans kept between calls (the pool's connections plan every statement of their own).
set plan_cache_mode = auto as $$
declare
    v_subject integer;
    v_to integer;
    v_replay text;
    v_op integer;
    v_unit text;
    v_giver integer;
    v_taker integer;
    v_given bigint;
    v_held bigint;
    v_entry bigint;
begin
    v_subject := puhui_subject(p_pseudonym);
    v_to := puhui_subject(p_to);
    if p_programme is not null then
        perform 1 from programmes where code = p_programme;
        if not found then
            raise exception using errcode = 'PH404',
                message = format('no programme %L', p_programme);
        end if;
    end if;
    v_replay := puhui_replay(v_subject, p_key, p_digest);
    if v_replay is not null then
        return v_replay;
    end if;
    v_op := nextval('operations_id_seq');
    if p_programme is null then
        v_unit := 'g';
        insert into accounts (kind, subject_id, unit) values ('citizen', v_subject, 'g'),
                                                             ('citizen', v_to, 'g')
        on conflict (subject_id) do nothing;
        select id into v_giver from accounts where subject_id = v_subject;
        select id into v_taker from accounts where subject_id = v_to;
    else
        v_unit := 'pt';
        insert into accounts (kind, code, owner_id, unit)
        values ('points', 'points:' || p_programme || ':' || v_subject, v_subject, 'pt'),
               ('points', 'points:' || p_programme || ':' || v_to, v_to, 'pt')
        on conflict (code) do nothing;
        select id into v_giver from accounts
         where code = 'points:' || p_programme || ':' || v_subject;
        select id into v_taker from accounts where code = 'points:' || p_programme || ':' || v_to;
    end if;
    -- Both citizens' rows in the one lock order (by account id): the giver's gifts of the day
    -- are then counted after those before them.
    perform 1 from balances where account_id in (v_giver, v_taker)
     order by account_id for update;
    select coalesce(sum(amount), 0) into v_given from transfers
     where debit_account_id = v_giver and kind = 'transfer' and created_at >= p_day_start;
    if p_amount > p_most then
        perform puhui_refuse('gift_too_large',
                             format('a gift is at most %s %s', p_most, v_unit));
    end if;
    if v_given + p_amount > p_per_day then
        perform puhui_refuse('daily_gift_limit',
                             format('a citizen gives at most %s %s a day', p_per_day, v_unit));
    end if;
    update balances set balance_g = balance_g - p_amount
     where account_id = v_giver and balance_g >= p_amount;
    if not found then
        v_held := coalesce((select balance_g from balances where account_id = v_giver), 0);
        perform puhui_refuse('insufficient_balance',
            format('a gift of %s %s; the account holds %s %s', p_amount, v_unit, v_held, v_unit),
            v_held, p_amount, v_unit);
    end if;
    perform puhui_add(v_taker, p_amount);
    insert into transfers (kind, debit_account_id, credit_account_id, amount, operation_id,
                           created_at)
    values ('transfer', v_giver, v_taker, p_amount, v_op, p_at)
    returning id into v_entry;
    return puhui_record(v_op, v_subject, p_key, 'transfer', p_digest, null, p_actor, p_at,
        jsonb_build_object('amount', p_amount, 'unit', v_unit, 'programme', p_programme,
                           'entry', v_entry));
end $$
""",
]

# In the order they are dropped (those that call others first).
FUNCTION_NAMES = (
    "puhui_redeem",
    "puhui_retire",
    "puhui_give",
    "puhui_record",
    "puhui_add",
    "puhui_replay",
    "puhui_subject",
    "puhui_refuse",
)
