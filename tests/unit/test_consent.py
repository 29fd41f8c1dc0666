"""The consent rules of `domain.consent`, as worked examples: a grant's state from its events
and expiry, what each scope allows, and the refusals that name what is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from puhui.domain import consent
from puhui.domain.consent import Event, Kind, Scope, State
from puhui.domain.errors import ConsentError, InputError

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def granted(scopes: set[Scope], days: int = 30, grant_id: str = "g1", at: datetime = T0) -> Event:
    return Event(grant_id, Kind.GRANT, "p", "amap", at, "citizen", frozenset(scopes),
                 consent.expiry(at, days))  # fmt: skip


def revoked(at: datetime, grant_id: str = "g1", actor: str = "citizen") -> Event:
    return Event(grant_id, Kind.REVOKE, "p", "amap", at, actor)


def test_a_grant_is_active_until_it_expires() -> None:
    grant = consent.fold([granted({Scope.BALANCE}, days=30)])["g1"]
    assert grant.expires_at == T0 + timedelta(days=30)
    assert grant.state(T0) is State.ACTIVE
    assert grant.state(T0 + timedelta(days=30) - timedelta(seconds=1)) is State.ACTIVE
    assert grant.state(T0 + timedelta(days=30)) is State.EXPIRED


def test_a_revocation_ends_a_grant_and_the_first_one_counts() -> None:
    events = [
        revoked(T0 + timedelta(days=2), actor="operator:ops"),
        granted({Scope.BALANCE}),
        revoked(T0 + timedelta(days=1)),
    ]
    grant = consent.fold(events)["g1"]
    assert (grant.revoked_at, grant.revoked_by) == (T0 + timedelta(days=1), "citizen")
    assert grant.state(T0) is State.ACTIVE
    assert grant.state(T0 + timedelta(days=1)) is State.REVOKED


def test_a_revocation_of_an_unknown_grant_makes_nothing() -> None:
    assert consent.fold([revoked(T0, grant_id="g9")]) == {}


def test_history_all_also_answers_for_history() -> None:
    assert consent.allows({Scope.HISTORY_ALL}, Scope.HISTORY)
    assert not consent.allows({Scope.HISTORY}, Scope.HISTORY_ALL)
    assert not consent.allows({Scope.BALANCE, Scope.HISTORY}, Scope.SPEND)


@pytest.mark.parametrize(
    ("events", "held", "needed", "code"),
    [
        ([], {Scope.BALANCE}, Scope.BALANCE, "consent_required"),
        ([granted({Scope.BALANCE}), revoked(T0)], {Scope.BALANCE}, Scope.BALANCE, "grant_revoked"),
        ([granted({Scope.BALANCE}, at=T0 - timedelta(days=31))], {Scope.BALANCE},
         Scope.BALANCE, "grant_expired"),
        ([granted({Scope.BALANCE})], {Scope.BALANCE}, Scope.SPEND, "insufficient_scope"),
        # A token holding a scope its grant does not is still refused.
        ([granted({Scope.BALANCE})], {Scope.SPEND}, Scope.SPEND, "insufficient_scope"),
    ],
)  # fmt: skip
def test_each_refusal_names_what_is_missing(
    events: list[Event], held: set[Scope], needed: Scope, code: str
) -> None:
    grant = consent.fold(events).get("g1")
    with pytest.raises(ConsentError) as refused:
        consent.check(grant, held, needed, T0)
    assert refused.value.code == code


def test_an_active_grant_with_the_scope_allows_the_call() -> None:
    grant = consent.fold([granted({Scope.BALANCE, Scope.HISTORY_ALL})])["g1"]
    consent.check(grant, {Scope.BALANCE, Scope.HISTORY_ALL}, Scope.HISTORY, T0)


def test_scopes_are_parsed_strictly_and_written_in_one_order() -> None:
    assert consent.parse_scopes("spend balance") == {Scope.SPEND, Scope.BALANCE}
    assert consent.scope_text({Scope.SPEND, Scope.BALANCE}) == "balance spend"
    for bad in ("", "balance everything"):
        with pytest.raises(InputError):
            consent.parse_scopes(bad)


def test_a_grant_lasts_one_of_the_offered_lifetimes() -> None:
    assert [consent.expiry(T0, d) - T0 for d in consent.EXPIRY_DAYS] == [
        timedelta(days=30), timedelta(days=90), timedelta(days=365),
    ]  # fmt: skip
    with pytest.raises(InputError):
        consent.expiry(T0, 7)


def test_an_access_token_lives_15_minutes_capped_by_the_grant() -> None:
    grant = consent.fold([granted({Scope.BALANCE})])["g1"]
    assert consent.token_lifetime(T0, grant) == 900
    assert consent.token_lifetime(grant.expires_at - timedelta(seconds=60), grant) == 60
    assert consent.token_lifetime(grant.expires_at + timedelta(days=1), grant) == 0


def test_a_number_is_shown_masked() -> None:
    assert consent.masked("m:18948626928") == "+86 189 **** 6928"
    with pytest.raises(InputError):
        consent.masked("id:11010519491231002X")
