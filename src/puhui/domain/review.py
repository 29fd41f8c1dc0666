"""Held records (spec v1.1), stated once: which credits wait, and how a held record ends.

After settlement has decided a chunk, every record it would credit is *judged*:

0. **Registry.** On a node of the common mechanism (`domain.federation`), every record it
   would credit waits for the registry's answer: `awaiting_registry`.
1. **Policy.** When the evidence policies are in force on the record's China day and a policy
   covers its scene and region, a record of a platform that is not one of the policy's
   authorities waits for what the policy asks: `awaiting_corroboration` or `review_required`.
2. **Signals.** Every registered signal (`domain.signals`) that fires on it adds its code.
3. A record with at least one reason is **held**: its receipt says `held` with the reasons and
   the grams it would credit (the caps count them, as they count credits), it holds its claim
   (a later record of the same behaviour is its duplicate), and its grams are pending on the
   ledger (a `hold` transfer into the citizen's held account).

A held record ends once, in one of these ways, and its receipt then shows the outcome:

- **Corroborated**: a record of one of its policy's authorities (another platform) is a
  duplicate of it. When `awaiting_corroboration` was its only reason, it is credited
  (`corroborated`); otherwise the corroboration is noted and a reviewer decides.
- **Released** or **rejected** by a reviewer (`released`, `rejected_on_review`).
- **Registered** (a node of the common mechanism): the registry answered its claim. `first`
  takes `awaiting_registry` off its reasons: credited (`registered`) when nothing else is
  left, or as corroborated when only corroboration was left and it came meanwhile; otherwise
  it stays held for the rest. `duplicate` ends it as a duplicate (`duplicate_federated`): its
  pending grams go back to the issuing account, and it keeps its claim, as every duplicate
  does. A reviewer may reject a record still awaiting the registry, not release it.
- **Timed out**: still awaiting corroboration, and nothing else, at the end of its policy's
  window: rejected (`not_corroborated`) or credited (`credited_uncorroborated`) as the policy
  says.

Credited: its pending grams are posted to the citizen's account (`release`). Rejected: they go
back to the issuing account (`void`), it holds no claim any more and no longer counts towards
caps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from puhui.domain.evidence import Evidence, OnTimeout, Policy
from puhui.domain.reasons import Reason, Status
from puhui.domain.signals import SIGNALS


class Judged(NamedTuple):
    """A record settlement would credit, as the review reads it."""

    seq: int
    platform: str
    scene: str | None
    region: str | None
    day: date | None


class Hold(NamedTuple):
    """Why a record is held: its reasons in a stable order (the policy's first, then the
    signals' in registry order) and the policy it waits under, if any."""

    reasons: tuple[Reason, ...]
    policy: Policy | None


def hold_of(
    record: Judged, evidence: Evidence, fired: Mapping[Reason, object], federated: bool = False
) -> Hold | None:
    """Whether, and why, a record settlement would credit is held instead (`federated`: this
    node registers its claims with the common mechanism's registry)."""
    reasons: list[Reason] = [Reason.AWAITING_REGISTRY] if federated else []
    waits = policy = None
    if evidence.applies_on(record.day):
        policy = evidence.policy_for(record.scene, record.region)
        waits = None if policy is None else policy.hold_reason(record.platform)
        if waits is not None:
            reasons.append(waits)
        reasons += [code for code in SIGNALS if code in fired]
    if not reasons:
        return None
    return Hold(tuple(reasons), policy if waits is not None else None)


class Decision(StrEnum):
    """What a reviewer decides of a held record."""

    RELEASE = "release"
    REJECT = "reject"


class Outcome(NamedTuple):
    """How a held record ended: its final status and reason."""

    status: Status
    reason: Reason


def corroborates(policy: Policy | None, held_platform: str, reporter: str) -> bool:
    """Whether a duplicate reported by `reporter` corroborates a record of `held_platform`
    waiting under `policy`: an authority of the policy, other than the held record's platform."""
    return policy is not None and reporter in policy.authorities and reporter != held_platform


def on_corroboration(reasons: tuple[str, ...]) -> Outcome | None:
    """The outcome of a corroborated held record: credited when it waited for nothing else;
    None when a reviewer must still decide."""
    if set(reasons) == {Reason.AWAITING_CORROBORATION}:
        return Outcome(Status.CREDITED, Reason.CORROBORATED)
    return None


def on_decision(decision: Decision) -> Outcome:
    """The outcome of a reviewer's decision."""
    if decision is Decision.RELEASE:
        return Outcome(Status.CREDITED, Reason.RELEASED)
    return Outcome(Status.REJECTED, Reason.REJECTED_ON_REVIEW)


def on_registry(
    reasons: tuple[str, ...], first: bool, corroborated: bool
) -> tuple[Outcome | None, tuple[str, ...]]:
    """What the registry's answer does to a record held awaiting it: (its outcome, or None
    while it stays held; the reasons it is still held for)."""
    if not first:
        return Outcome(Status.DUPLICATE, Reason.DUPLICATE_FEDERATED), ()
    rest = tuple(r for r in reasons if r != Reason.AWAITING_REGISTRY)
    if not rest:
        return Outcome(Status.CREDITED, Reason.REGISTERED), rest
    if corroborated:
        return on_corroboration(rest), rest
    return None, rest


def may_release(reasons: tuple[str, ...]) -> bool:
    """Whether a reviewer may release a held record: not while it awaits the registry, whose
    answer may be that another node's record came first."""
    return Reason.AWAITING_REGISTRY not in reasons


def on_timeout(reasons: tuple[str, ...], policy: Policy) -> Outcome | None:
    """The outcome of a held record uncorroborated at the end of its policy's window: by the
    policy when it waited for nothing else; None when a reviewer must still decide."""
    if set(reasons) != {Reason.AWAITING_CORROBORATION}:
        return None
    if policy.on_timeout is OnTimeout.CREDIT:
        return Outcome(Status.CREDITED, Reason.CREDITED_UNCORROBORATED)
    return Outcome(Status.REJECTED, Reason.NOT_CORROBORATED)


def final_reason(outcome: Outcome, capped: bool) -> str:
    """The reason a decided receipt carries: the outcome's, and `capped` when the credit was
    cut by a cap."""
    if outcome.status is Status.CREDITED and capped:
        return f"{outcome.reason};{Reason.CAPPED}"
    return outcome.reason.value


class OpenHold(NamedTuple):
    """A held record not decided yet, as corroboration and timeouts read it."""

    seq: int
    platform: str
    reasons: tuple[str, ...]
    policy: str | None
    corroborated_by: int | None


class Resolution(NamedTuple):
    """How one held record ends: the outcome, who decided (a reviewer's name, or `policy`),
    their reason, and the authority's record that corroborated it, if one did."""

    seq: int
    outcome: Outcome
    decided_by: str
    note: str | None = None
    corroborated_by: int | None = None
