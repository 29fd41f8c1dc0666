"""Worked examples of the rules of personal carbon accounts (`domain.accounts`), through the use
cases of `service.wallet` on fakes of their ports: what each operation refuses, in which order,
and what a re-sent key answers. No database: the SQL renderings are held to the same rules by
the stateful property test on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from puhui.domain import accounts as rules
from puhui.domain.errors import InputError, InsufficientBalance, NotFoundError, RefusedError
from puhui.service import wallet
from tests.fakes import FakeApp

ALICE, BOB = "pseudonym-alice", "pseudonym-bob"


def app_with(grams: dict[str, int], **reward: Any) -> Any:
    """An account book where citizens hold these grams, and a reward `r` on these terms (a
    500 g tree with a stock of 3, by default)."""
    app = FakeApp()
    for who, held in grams.items():
        app.book.balances[f"citizen:{who}"] = held
    terms = {"kind": "tree", "price_g": 500, "stock": 3, **reward}
    kind = terms.pop("kind")
    wallet.add_reward(app, "r", "A reward", kind, "issuer", **terms)  # type: ignore[arg-type]
    return app


def refused(call: Any, *args: Any) -> RefusedError:
    with pytest.raises(RefusedError) as caught:
        call(*args)
    return caught.value


def test_a_redemption_pays_the_price_and_takes_one_from_the_stock() -> None:
    app = app_with({ALICE: 1200})
    done = wallet.redeem(app, ALICE, "r", "k1", "test")
    assert (done.result["price"], done.result["tree_number"]) == (500, 1)
    assert app.book.balances[f"citizen:{ALICE}"] == 700
    assert wallet.get_reward(app, "r").remaining == 2


def test_too_little_in_the_account_names_the_price_and_the_balance() -> None:
    app = app_with({ALICE: 365})
    error = refused(wallet.redeem, app, ALICE, "r", "k1", "test")
    assert isinstance(error, InsufficientBalance)
    assert str(error) == "r costs 500 g; the account holds 365 g"
    assert (error.held, error.needed, error.unit) == (365, 500, "g")
    assert app.book.balances[f"citizen:{ALICE}"] == 365  # nothing changed


def test_a_reward_outside_its_window_is_not_available() -> None:
    now = FakeApp().now
    app = app_with({ALICE: 5000}, valid_from=now + timedelta(days=1))
    assert refused(wallet.redeem, app, ALICE, "r", "k1", "test").code == "not_available"
    app = app_with({ALICE: 5000}, valid_to=now)  # the end is excluded
    assert refused(wallet.redeem, app, ALICE, "r", "k1", "test").code == "not_available"


def test_a_citizen_redeems_up_to_the_limit() -> None:
    app = app_with({ALICE: 5000, BOB: 5000}, per_citizen_limit=1)
    wallet.redeem(app, ALICE, "r", "k1", "test")
    assert refused(wallet.redeem, app, ALICE, "r", "k2", "test").code == "limit_reached"
    wallet.redeem(app, BOB, "r", "k1", "test")  # another citizen's limit is their own


def test_the_stock_runs_out() -> None:
    app = app_with({ALICE: 5000}, stock=1)
    wallet.redeem(app, ALICE, "r", "k1", "test")
    assert refused(wallet.redeem, app, ALICE, "r", "k2", "test").code == "out_of_stock"


def test_the_window_is_checked_before_the_limit_the_balance_and_the_stock() -> None:
    """The first rule that fails is the answer: window, limit, balance, stock."""
    app = app_with({ALICE: 0}, stock=0, valid_to=FakeApp().now)
    assert refused(wallet.redeem, app, ALICE, "r", "k1", "test").code == "not_available"
    app = app_with({ALICE: 0}, stock=0)
    assert refused(wallet.redeem, app, ALICE, "r", "k1", "test").code == "insufficient_balance"


def test_a_coupon_hands_out_its_codes_in_order_until_none_is_left() -> None:
    app = app_with({ALICE: 5000}, kind="coupon", stock=None)
    assert wallet.add_codes(app, "r", ["C-1", "C-2"]) == 2
    codes = [wallet.redeem(app, ALICE, "r", f"k{i}", "test").result["coupon_code"] for i in (1, 2)]
    assert codes == ["C-1", "C-2"]
    assert refused(wallet.redeem, app, ALICE, "r", "k3", "test").code == "out_of_stock"


def test_a_resent_key_answers_the_first_answer_and_another_request_is_refused() -> None:
    app = app_with({ALICE: 5000})
    first = wallet.redeem(app, ALICE, "r", "k1", "test")
    again = wallet.redeem(app, ALICE, "r", "k1", "test")
    assert (again.replayed, again.operation, again.result) == (True, first.operation, first.result)
    assert app.book.balances[f"citizen:{ALICE}"] == 4500  # paid once
    other = refused(wallet.retire, app, ALICE, 10, "k1", "test")
    assert other.code == "idempotency_conflict"


def test_a_refused_operation_leaves_its_key_free() -> None:
    app = app_with({ALICE: 100})
    assert refused(wallet.redeem, app, ALICE, "r", "k1", "test").code == "insufficient_balance"
    app.book.balances[f"citizen:{ALICE}"] = 600
    assert not wallet.redeem(app, ALICE, "r", "k1", "test").replayed


def test_gifts_are_limited_per_gift_and_per_china_day() -> None:
    most, per_day = rules.MAX_GIFT["g"], rules.MAX_GIFTS_PER_DAY["g"]
    app = app_with({ALICE: 10 * per_day})
    assert refused(wallet.transfer, app, ALICE, BOB, most + 1, "k0", "test").code == (
        "gift_too_large"
    )
    for i in range(per_day // most):
        wallet.transfer(app, ALICE, BOB, most, f"k{i + 1}", "test")
    assert refused(wallet.transfer, app, ALICE, BOB, 1, "kx", "test").code == "daily_gift_limit"
    app.now += timedelta(days=1)  # a new China day
    assert wallet.transfer(app, ALICE, BOB, 1, "ky", "test").result["amount"] == 1


def test_a_gift_needs_the_grams_and_another_citizen() -> None:
    app = app_with({ALICE: 10})
    error = refused(wallet.transfer, app, ALICE, BOB, 11, "k1", "test")
    assert str(error) == "a gift of 11 g; the account holds 10 g"
    with pytest.raises(InputError):
        wallet.transfer(app, ALICE, ALICE, 1, "k2", "test")
    with pytest.raises(NotFoundError):
        wallet.transfer(app, ALICE, BOB, 1, "k3", "test", programme="none")


def test_a_retirement_takes_only_what_the_account_holds() -> None:
    app = app_with({ALICE: 100})
    error = refused(wallet.retire, app, ALICE, 101, "k1", "test")
    assert str(error) == "retiring 101 g takes them; the account holds 100 g"
    done = wallet.retire(app, ALICE, 100, "k2", "test")
    assert done.result["certificate"].startswith("PH-")
    assert app.book.balances[f"retired:{ALICE}"] == 100


def test_only_a_credit_a_redemption_or_a_gift_is_reversed_and_only_once() -> None:
    app = app_with({ALICE: 1000})
    retired = wallet.retire(app, ALICE, 10, "k1", "test")
    assert refused(wallet.reverse, app, retired.result["entry"], "r1", "ops", "why").code == (
        "not_reversible"
    )
    gift = wallet.transfer(app, ALICE, BOB, 100, "k2", "test")
    wallet.reverse(app, gift.result["entry"], "r2", "ops", "sent by mistake")
    assert app.book.balances[f"citizen:{BOB}"] == 0
    assert refused(wallet.reverse, app, gift.result["entry"], "r3", "ops", "again").code == (
        "already_reversed"
    )


def test_keys_are_printable_and_not_too_long() -> None:
    app = app_with({ALICE: 1000})
    for key in ("", "x" * (rules.MAX_KEY + 1), "a\x00b"):
        with pytest.raises(InputError):
            wallet.redeem(app, ALICE, "r", key, "test")


@pytest.mark.parametrize(
    ("stock", "parts", "numbers"),
    [(3, 3, [1, 2, 3]), (40, 16, list(range(1, 41))), (0, 1, [])],
)
def test_a_limited_stock_is_kept_in_parts_that_number_one_to_stock(
    stock: int, parts: int, numbers: list[int]
) -> None:
    shards = rules.stock_shards(stock, "tree")
    assert len(shards) == parts
    assert sum(s.allotted or 0 for s in shards) == stock
    handed = [s.next_number + i for s in shards for i in range(s.allotted or 0)]
    assert sorted(handed) == numbers


def test_an_unlimited_stock_numbers_blocks_that_never_meet() -> None:
    shards = rules.stock_shards(None, "tree")
    assert [s.next_number for s in shards[:2]] == [1, rules.NUMBER_BLOCK + 1]
    assert rules.after(7) == 8
    # The end of part 0's first block: its next block is 16 blocks further, after the others'.
    assert rules.after(rules.NUMBER_BLOCK) == rules.SHARDS * rules.NUMBER_BLOCK + 1
