"""The consent use cases (`service.consent`, `service.citizens.authorize`) on fakes of their
ports: signing in with a code, granting, revoking, and what a platform's token may do at each
moment."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from puhui.domain import consent
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError, ConsentError, InputError, NotFoundError
from puhui.service import citizens
from puhui.service import consent as consents
from tests.fakes_consent import FakeConsentApp


def app() -> Any:
    return FakeConsentApp()


def signed_in(a: Any, phone: str = "13800138000") -> citizens.Citizen:
    sent = consents.send_code(a, phone)
    code = re.search(r"[0-9]{6}", a.outbox.sent[-1][1])
    assert code
    return citizens.verify_token(a, consents.sign_in(a, sent.challenge, code.group()).token)


def test_a_code_goes_to_the_number_and_only_its_digest_is_kept() -> None:
    a = app()
    sent = consents.send_code(a, "189-4862-6928")
    [(number, text)] = a.outbox.sent
    assert number == "m:18948626928"
    assert sent.sent_to == "+86 189 **** 6928"
    code = re.search(r"[0-9]{6}", text)
    assert code
    assert code.group() not in str(a.store.codes)


def test_codes_go_to_mobile_numbers_only() -> None:
    with pytest.raises(InputError):
        consents.send_code(app(), "11010519491231002X")


def test_a_signed_in_citizen_grants_and_the_platform_is_allowed_what_was_granted() -> None:
    a = app()
    me = signed_in(a)
    assert me.own_session
    grant = consents.grant(a, me.pseudonym, "amap", frozenset({Scope.BALANCE}), 90)
    token = citizens.verify_token(a, citizens.issue_access_token(a, grant).token)
    assert (token.platform, token.grant_id, token.scopes) == ("amap", grant.id, {Scope.BALANCE})
    citizens.authorize(a, token, Scope.BALANCE)
    with pytest.raises(ConsentError, match="spend"):
        citizens.authorize(a, token, Scope.SPEND)

    consents.revoke(a, me.pseudonym, grant.id)
    with pytest.raises(ConsentError) as refused:
        citizens.authorize(a, token, Scope.BALANCE)
    assert refused.value.code == "grant_revoked"
    # The citizen's own session may do anything with the account.
    citizens.authorize(a, me, Scope.SPEND)


def test_a_citizen_revokes_only_their_own_grants() -> None:
    a = app()
    me, other = signed_in(a), signed_in(a, "13900139000")
    grant = consents.grant(a, me.pseudonym, "amap", frozenset({Scope.BALANCE}), 30)
    with pytest.raises(NotFoundError):
        consents.revoke(a, other.pseudonym, grant.id)
    assert [g.id for g in consents.grants(a, me.pseudonym)] == [grant.id]
    assert consents.grants(a, other.pseudonym) == []


def test_a_token_of_another_citizen_or_platform_than_its_grant_is_refused() -> None:
    a = app()
    me = signed_in(a)
    grant = consents.grant(a, me.pseudonym, "amap", frozenset({Scope.BALANCE}), 30)
    mine = citizens.verify_token(a, citizens.issue_access_token(a, grant).token)
    for claimed in (
        citizens.Citizen("someone-else", "amap", grant.id, mine.scopes),
        citizens.Citizen(me.pseudonym, "didi", grant.id, mine.scopes),
    ):
        with pytest.raises(ConsentError) as refused:
            citizens.authorize(a, claimed, Scope.BALANCE)
        assert refused.value.code == "consent_required"


def test_a_grant_expires_with_its_tokens() -> None:
    a = app()
    me = signed_in(a)
    grant = consents.grant(a, me.pseudonym, "amap", frozenset({Scope.BALANCE}), 30)
    a.now = grant.expires_at - timedelta(minutes=1)
    token = citizens.issue_access_token(a, grant)
    assert token.expires_at == grant.expires_at
    a.now = grant.expires_at
    with pytest.raises(AuthenticationError) as expired:
        citizens.verify_token(a, token.token)
    assert expired.value.code == "expired_token"


def test_a_rotation_refuses_the_older_versions_tokens_and_codes() -> None:
    a = app()
    me = signed_in(a)
    grant = consents.grant(a, me.pseudonym, "amap", frozenset({Scope.BALANCE}), 30)
    token = citizens.issue_access_token(a, grant).token
    a.rotate("citizen-tokens")
    with pytest.raises(AuthenticationError, match="no longer in use"):
        citizens.verify_token(a, token)

    sent = consents.send_code(a, "13800138000")
    code = re.search(r"[0-9]{6}", a.outbox.sent[-1][1])
    assert code
    a.rotate("consent-codes")
    with pytest.raises(AuthenticationError):
        consents.sign_in(a, sent.challenge, code.group())


def test_a_redirect_uri_is_https_or_this_machine() -> None:
    a = app()
    assert consents.add_redirect_uri(a, "amap", "https://app.example.com/cb")
    assert not consents.add_redirect_uri(a, "amap", "https://app.example.com/cb")
    assert consents.add_redirect_uri(a, "amap", "http://127.0.0.1:8765/cb")
    for bad in ("http://app.example.com/cb", "https://app.example.com/cb#x", "app://cb"):
        with pytest.raises(InputError):
            consents.add_redirect_uri(a, "amap", bad)
    assert consents.redirect_uris(a, "amap") == [
        "https://app.example.com/cb",
        "http://127.0.0.1:8765/cb",
    ]


def test_the_operator_says_why_a_grant_is_revoked() -> None:
    a = app()
    with pytest.raises(InputError):
        consents.revoke_for_operator(a, "13800138000", "g_x", "ops", " ")
    assert consent.SCOPES  # every scope is described for the consent page
