"""Worked examples of the formula language: exact decimals, four operators, two functions."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from puhui.domain import expressions
from puhui.domain.errors import MethodologyError

NAMES = {
    "fuel_l_per_km": Decimal("0.07"),
    "gasoline_g_per_l": Decimal("2200"),
    "kwh_per_km": Decimal("0.15"),
    "grid_ef": Decimal("558"),
    "recycling_avoided_paper": Decimal("219.72883"),
}


def evaluate(source: str) -> Decimal:
    return expressions.parse(source).evaluate(NAMES.__getitem__)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("0.1 + 0.2", "0.3"),
        ("0.07 * 2200", "154"),
        ("272 - 56.2", "215.8"),
        ("0.005 * 2577.57172", "12.8878586"),
        ("1.1 * 1.1 * 1.1", "1.331"),
    ],
)
def test_arithmetic_is_exact_decimal(source: str, value: str) -> None:
    """No binary floating point: 0.1 + 0.2 is 0.3 and 272 − 56.2 is 215.8."""
    result = evaluate(source)
    assert isinstance(result, Decimal)
    assert result == Decimal(value)


def test_an_ev_formula_evaluates_with_named_values() -> None:
    """Beijing EV: 0.07 × 2200 − 0.15 × 558 = 154 − 83.7 = 70.3 g per km."""
    assert evaluate("fuel_l_per_km * gasoline_g_per_l - kwh_per_km * grid_ef") == Decimal("70.3")


def test_multiplication_binds_tighter_than_addition_and_subtraction() -> None:
    """2 + 3 × 4 is 14, 10 − 2 × 3 is 4; parentheses change it."""
    assert evaluate("2 + 3 * 4") == 14
    assert evaluate("10 - 2 * 3") == 4
    assert evaluate("(2 + 3) * 4") == 20
    assert evaluate("(10 - 2) * 3") == 24


def test_subtraction_is_left_associative() -> None:
    """10 − 4 − 3 is (10 − 4) − 3 = 3, not 10 − (4 − 3) = 9."""
    assert evaluate("10 - 4 - 3") == 3


def test_unary_minus_negates_a_number_a_name_or_a_group() -> None:
    """−2 × 3, 2 × −3, −(1 + 2), −−2 and −max(1, 2)."""
    assert evaluate("-2 * 3") == -6
    assert evaluate("2 * -3") == -6
    assert evaluate("-(1 + 2)") == -3
    assert evaluate("--2") == 2
    assert evaluate("-max(1, 2)") == -2
    assert evaluate("154 - -1") == 155
    assert evaluate("-grid_ef") == -558


def test_max_and_min_take_two_expressions() -> None:
    """max(0, BE − PE) is how a formula keeps a reduction from going negative."""
    assert evaluate("max(0, 1 - 2)") == 0
    assert evaluate("max(0, 2 - 1)") == 1
    assert evaluate("min(3, 2 * 2)") == 3
    assert evaluate("min(max(1, 5), 4) + 1") == 5


def test_the_names_of_a_formula_are_listed_in_order_of_first_use() -> None:
    """Each name once, as the methodology check and the trace need them."""
    expr = expressions.parse("max(0, car - bus * 2) + car * bus")
    assert expr.names == ("car", "bus")


def test_a_material_placeholder_is_part_of_a_name() -> None:
    """`recycling_avoided_{material}` is one name, resolved per record."""
    expr = expressions.parse("recycling_avoided_{material} * 2")
    assert expr.names == ("recycling_avoided_{material}",)
    value = expr.evaluate(lambda name: NAMES[name.replace("{material}", "paper")])
    assert value == Decimal("439.45766")


def test_evaluation_asks_the_lookup_for_each_name() -> None:
    """A name the lookup does not know is the lookup's error, not a silent zero."""
    expr = expressions.parse("a + b")
    with pytest.raises(KeyError):
        expr.evaluate({"a": Decimal(1)}.__getitem__)


@pytest.mark.parametrize(
    "source",
    [
        "1 / 2",  # no division: results stay exact
        "a / b",
        "2 ** 3",
        "a.b",  # no attributes
        "x.__class__",
        "f(x)",  # no calls other than max and min
        "abs(1)",
        "__import__('os')",
        "max(1, 2, 3)",  # max and min take exactly two arguments
        "max(1)",
        "min()",
        "1 $ 2",  # unknown characters
        "1 % 2",
        "2 ^ 3",
        "a[0]",
        "a if b else c",
        "1 < 2",
        "'1'",
        "1e3",  # no exponents
        ".5",
        "1.",
        "{material}",
        "",
        "   ",
        "(1",
        "1)",
        "1 +",
        "1 2",
        "a b",
    ],
)
def test_anything_outside_the_language_is_refused(source: str) -> None:
    """Division, attributes, calls, unknown characters and broken syntax raise at parse."""
    with pytest.raises(MethodologyError):
        expressions.parse(source)


def test_the_result_is_exact_beyond_28_significant_digits() -> None:
    """Python's default 28 digits would give 1.000…E+30; the formula gives every digit."""
    assert evaluate("1000000000000000000000000000000 + 1") == Decimal(
        "1000000000000000000000000000001"
    )


def test_the_result_does_not_depend_on_the_callers_decimal_context() -> None:
    """A caller working at 4 significant digits still gets 1.2345 + 1 = 2.2345."""
    with decimal.localcontext(prec=4):
        assert evaluate("1.2345 + 1") == Decimal("2.2345")


def test_a_result_that_cannot_be_exact_is_refused() -> None:
    """A product of more than 100 significant digits raises instead of rounding."""
    sixty = "1" * 59 + "3"
    with pytest.raises(MethodologyError, match="exactly"):
        evaluate(f"{sixty} * {sixty}")
