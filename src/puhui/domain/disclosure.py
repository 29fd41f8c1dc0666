"""Which published figures may be shown: no figure anyone may read describes fewer than k
citizens.

A *cell* is a figure of a table of the public statistics (the grams, records and participants
of one province, scene, platform or month; the records of one reason for a duplicate or a
rejection; the totals), and its *participants* the number of distinct citizens it describes.
The rule, for one table:

1. A cell of fewer than k participants is suppressed (*primary* suppression).
2. When a table has any suppressed cell and some cell is still shown, the shown cell with the
   fewest participants (the first of them in the table's order when several tie) is suppressed
   too (*complementary* suppression). The cells of a table add up to a published total (the
   grams of every province make the total reductions), so subtracting the shown cells from the
   total recovers the sum of the suppressed ones: a cell suppressed alone would be recovered
   exactly, and several small ones together might still describe fewer than k citizens. With
   a cell of at least k participants among them, what a subtraction recovers always describes
   at least k citizens.

Tables published side by side must not nest (regions in provinces, days in months): a nested
table's shown cells subtracted from its parent's cell would give away what the rule hid within
the table.

A suppressed cell has no figure: the API gives `null` with `suppressed: true`, the dashboard and
its downloads the label `<k` (`<10`). A total of fewer than k participants is suppressed the
same way. Operators and regulators read every figure; k is `Settings.min_cell`
(`PUHUI_MIN_CELL`, 10 unless set).
"""

from __future__ import annotations

from collections.abc import Sequence

from puhui.domain.errors import ConfigurationError

# k unless configured: the smallest number of citizens a published figure may describe.
DEFAULT_MIN_CELL = 10


def suppressed(participants: Sequence[int], k: int) -> list[bool]:
    """Which cells of one table are suppressed, in the table's order, given each cell's
    distinct citizens (rule above).

    >>> suppressed([25, 9, 12, 40], 10)
    [False, True, True, False]
    >>> suppressed([25, 10, 40], 10)
    [False, False, False]
    """
    _check(k)
    hidden = [n < k for n in participants]
    shown = [i for i, h in enumerate(hidden) if not h]
    if any(hidden) and shown:
        hidden[min(shown, key=lambda i: participants[i])] = True
    return hidden


def total_suppressed(participants: int, k: int) -> bool:
    """Whether a published total (of a table, or of everything) is suppressed."""
    _check(k)
    return participants < k


def label(k: int) -> str:
    """How a suppressed figure reads on a page and in a download: `<10`."""
    return f"<{k}"


def _check(k: int) -> None:
    if k < 1:
        raise ConfigurationError(
            f"the smallest number of citizens of a published figure must be at least 1, not {k}"
        )
