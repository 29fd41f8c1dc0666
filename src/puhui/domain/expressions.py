"""A small exact arithmetic language for methodology formulas.

Formulas are data, not code: `fuel_l_per_km * gasoline_g_per_l - kwh_per_km * grid_ef`.
Allowed: decimal numbers, names, `+ - *`, parentheses, `max(a, b)` and `min(a, b)`. There is no
division, so every result is an exact decimal. Names are resolved by the caller (a parameter of
the methodology or an emission factor), which also records what each name resolved to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, localcontext

from puhui.domain.errors import MethodologyError

# A name may hold the placeholder `{material}`, replaced by the record's material.
# Sums and products of decimals are exact as long as they fit; refuse rather than round.
_EXACT = Context(prec=100, traps=[Inexact])

_TOKEN = re.compile(
    r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*(?:\{material\}[A-Za-z0-9_]*)?)|(.))"
)


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed formula; `names` are the identifiers it needs, in order of first use."""

    source: str
    names: tuple[str, ...]

    def evaluate(self, lookup: Callable[[str], Decimal]) -> Decimal:
        """Evaluate with exact decimals, asking `lookup` for the value of each name.

        Raises:
            MethodologyError: a result would need more than 100 significant digits.
        """
        with localcontext(_EXACT):
            try:
                return _Parser(self.source, lookup).parse()
            except Inexact:
                message = f"formula {self.source!r} cannot be computed exactly"
                raise MethodologyError(message) from None


def parse(source: str) -> Expr:
    """Parse and check a formula, returning it with the names it refers to.

    >>> parse("max(0, car - bus * 2)").names
    ('car', 'bus')

    Raises:
        MethodologyError: the formula uses anything outside the language.
    """
    seen: list[str] = []

    def record(name: str) -> Decimal:
        if name not in seen:
            seen.append(name)
        return Decimal(1)

    _Parser(source, record).parse()
    return Expr(source, tuple(seen))


class _Parser:
    """Recursive-descent evaluator: expr := term (('+'|'-') term)*, term := factor ('*' factor)*."""

    def __init__(self, source: str, lookup: Callable[[str], Decimal]) -> None:
        self.source = source
        self.lookup = lookup
        self.tokens: list[tuple[str, str]] = []
        for number, name, other in _TOKEN.findall(source):
            if number:
                self.tokens.append(("num", number))
            elif name:
                self.tokens.append(("name", name))
            elif other.strip():
                if other not in "+-*(),":
                    raise MethodologyError(f"formula {source!r}: {other!r} is not allowed")
                self.tokens.append(("op", other))
        self.pos = 0

    def parse(self) -> Decimal:
        if not self.tokens:
            raise MethodologyError("empty formula")
        value = self._expr()
        if self.pos != len(self.tokens):
            raise MethodologyError(
                f"formula {self.source!r}: unexpected {self.tokens[self.pos][1]!r}"
            )
        return value

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, value: str) -> None:
        token = self._peek()
        if token is None or token[1] != value:
            raise MethodologyError(f"formula {self.source!r}: expected {value!r}")
        self.pos += 1

    def _expr(self) -> Decimal:
        value = self._term()
        while (token := self._peek()) is not None and token[1] in ("+", "-"):
            self.pos += 1
            rhs = self._term()
            value = value + rhs if token[1] == "+" else value - rhs
        return value

    def _term(self) -> Decimal:
        value = self._factor()
        while (token := self._peek()) is not None and token[1] == "*":
            self.pos += 1
            value = value * self._factor()
        return value

    def _factor(self) -> Decimal:
        token = self._peek()
        if token is None:
            raise MethodologyError(f"formula {self.source!r} ends too early")
        kind, text = token
        self.pos += 1
        if kind == "num":
            return Decimal(text)
        if text == "-":
            return -self._factor()
        if text == "(":
            value = self._expr()
            self._take(")")
            return value
        if kind == "name" and text in ("max", "min"):
            self._take("(")
            first = self._expr()
            self._take(",")
            second = self._expr()
            self._take(")")
            return max(first, second) if text == "max" else min(first, second)
        if kind == "name":
            return self.lookup(text)
        raise MethodologyError(f"formula {self.source!r}: unexpected {text!r}")
