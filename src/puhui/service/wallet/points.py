"""The points programmes' scheduled jobs (`puhui jobs run`): award points for the credits not
yet awarded, expire the points past their validity."""

from __future__ import annotations

from dataclasses import dataclass

from puhui.bootstrap import App
from puhui.service.wallet.catalogue import list_programmes


@dataclass(frozen=True, slots=True)
class JobReport:
    """What one run of the scheduled jobs did."""

    awarded_points: int
    awarded_credits: int
    expired_points: int
    expired_accounts: int


def run_jobs(app: App) -> JobReport:
    """Award points for credits not yet awarded and expire points past their validity, for
    every programme. Idempotent: a second run right after does nothing."""
    awarded = credits = expired = accounts = 0
    points = app.points()
    for programme in list_programmes(app):
        a, c = points.award(programme.code, app.clock())
        x, n = points.expire(programme.code, app.clock())
        awarded, credits, expired, accounts = awarded + a, credits + c, expired + x, accounts + n
    return JobReport(awarded, credits, expired, accounts)
