"""The citizen's side of consent, on the web: signing in to puhui with a code sent to their
phone (`/dashboard/sign-in`), the OAuth authorization page where a member app sends them
(`/oauth/authorize`: which scopes the app asks for, fewer if they like, for how long; allow or
deny), the token endpoint the app then calls (`/oauth/token`), and revoking a grant from the
citizen's page (`/dashboard/me`).

The session is a citizen's own token (`service.citizens.issue_session`) in an HttpOnly cookie,
SameSite=Lax so that it comes along when a member app sends the citizen here; every form that
changes something carries a token derived from the session (a cross-site form cannot know it).
The protocol itself is Authlib's (`service.consent_oauth`); this module only adapts Starlette's
requests to it and renders the pages.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from authlib.oauth2 import OAuth2Error
from fastapi import FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from puhui.bootstrap import App
from puhui.domain import consent
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError, InputError, NotFoundError, RateLimitedError
from puhui.entrypoints import i18n
from puhui.service import citizens, consent_oauth, erasure
from puhui.service import consent as consents

COOKIE = "puhui_citizen"
SIGN_IN = "/dashboard/sign-in"
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def install(api: FastAPI, app: App) -> None:
    """Add the sign-in, authorization, token and revocation routes to the application."""
    server = consent_oauth.Server(app)

    def render(name: str, lang: str, status: int = 200, **values: Any) -> HTMLResponse:
        t = i18n.TEXT[lang]
        page_title = t["consent"] if name == "consent.html" else t["login"]
        html = TEMPLATES.get_template(name).render(t=t, lang=lang, page_title=page_title, **values)
        return HTMLResponse(html, status_code=status)

    def language(request: Request) -> str:
        return i18n.language(request.query_params.get("lang") or request.cookies.get("lang"))

    def session(request: Request) -> tuple[citizens.Citizen, str] | None:
        """The citizen signed in to puhui in this browser, and the session's form token."""
        token = request.cookies.get(COOKIE, "")
        try:
            who = citizens.verify_token(app, token)
        except AuthenticationError:
            return None
        return (who, form_token(app, token)) if who.own_session else None

    async def form_of(request: Request) -> dict[str, list[str]]:
        body = (await request.body()).decode("utf-8", "replace")
        return parse_qs(body, keep_blank_values=True)

    def http_request(request: Request, form: dict[str, list[str]]) -> consent_oauth.HttpRequest:
        return consent_oauth.HttpRequest(
            request.method,
            str(request.url),
            dict(request.headers),
            parse_qs(request.url.query, keep_blank_values=True),
            form,
        )

    def answered(answer: consent_oauth.Answer) -> Response:
        status, body, headers = answer
        if status == 302:
            return RedirectResponse(dict(headers)["Location"], status_code=302)
        return Response(body, status_code=status, headers=dict(headers))

    def refused(lang: str, error: OAuth2Error) -> Response:
        """An authorization refused: back to the app when its redirect URI is known to be
        its own, else a page saying why (never a redirect to an address not registered)."""
        if error.redirect_uri:
            return answered(server.handle_error_response(None, error))
        return render(
            "oauth_error.html", lang, 400, error=error.error, description=error.description
        )

    # Signing in --------------------------------------------------------------------------

    @api.get(SIGN_IN, include_in_schema=False)
    def sign_in_form(
        request: Request, next: Annotated[str, Query(max_length=4000)] = "/dashboard/me"
    ) -> HTMLResponse:
        return render("signin.html", language(request), next=local(next))

    @api.post(SIGN_IN + "/code", include_in_schema=False)
    async def send_code(request: Request) -> HTMLResponse:
        lang = language(request)
        t = i18n.TEXT[lang]
        form = await form_of(request)
        after = local(first(form, "next"))
        try:
            sent = await run_in_threadpool(consents.send_code, app, first(form, "phone")[:32])
        except InputError:
            return render("signin.html", lang, 422, next=after, error=t["bad_phone"])
        except RateLimitedError:
            return render("signin.html", lang, 429, next=after, error=t["too_many_codes"])
        return render(
            "signin.html", lang, next=after, challenge=sent.challenge, sent_to=sent.sent_to
        )

    @api.post(SIGN_IN, include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        lang = language(request)
        form = await form_of(request)
        after = local(first(form, "next"))
        challenge = first(form, "challenge")[:64]
        try:
            issued = await run_in_threadpool(
                consents.sign_in, app, challenge, first(form, "code")[:16]
            )
        except AuthenticationError:
            return render(
                "signin.html", lang, 401, next=after, challenge=challenge,
                sent_to="", error=i18n.TEXT[lang]["bad_code"],
            )  # fmt: skip
        response = RedirectResponse(after, status_code=303)
        response.set_cookie(COOKIE, issued.token, httponly=True, samesite="lax")
        return response

    # Authorization -----------------------------------------------------------------------

    @api.get("/oauth/authorize", include_in_schema=False)
    async def authorize(request: Request) -> Response:
        lang = language(request)
        req = http_request(request, {})
        try:
            grant = await run_in_threadpool(server.get_consent_grant, req)
        except OAuth2Error as error:
            return refused(lang, error)
        signed_in = session(request)
        if signed_in is None:
            return render(
                "signin.html", lang, next=local(request.url.path + "?" + request.url.query)
            )
        return await run_in_threadpool(consent_page, request, lang, grant, signed_in[1])

    def consent_page(
        request: Request, lang: str, grant: Any, csrf: str, error: str = ""
    ) -> HTMLResponse:
        asked = consent.parse_scopes(grant.request.scope)
        code = grant.client.platform
        # The name the citizen knows the app by, with the code it is registered under.
        name = app.directory().platform_name(code) or code
        return render(
            "consent.html",
            lang,
            400 if error else 200,
            platform=code if name == code else f"{name} ({code})",
            scopes=consent.scope_text(asked).split(),
            expiry_days=consent.EXPIRY_DAYS,
            action="/oauth/authorize?" + request.url.query,
            csrf=csrf,
            error=error,
        )

    @api.post("/oauth/authorize", include_in_schema=False)
    async def decide(request: Request) -> Response:
        lang = language(request)
        form = await form_of(request)
        signed_in = session(request)
        if signed_in is None or not hmac.compare_digest(first(form, "csrf"), signed_in[1]):
            return render(
                "signin.html", lang, 401, next=local(f"/oauth/authorize?{request.url.query}")
            )
        who = signed_in[0]
        # The OAuth parameters are the query's; the citizen's choices the form's.
        req = http_request(request, {})
        try:
            grant = await run_in_threadpool(server.get_consent_grant, req)
        except OAuth2Error as error:
            return refused(lang, error)
        if first(form, "decision") != "approve":
            return answered(server.create_authorization_response(req, None, grant))
        asked = consent.parse_scopes(grant.request.scope)
        chosen = frozenset(Scope(s) for s in form.get("grant_scope", []) if s in asked)
        if not chosen:
            return await run_in_threadpool(
                consent_page, request, lang, grant, signed_in[1], i18n.TEXT[lang]["nothing_chosen"]
            )
        try:
            days = int(first(form, "days") or "0")
            made = await run_in_threadpool(
                consents.grant, app, who.pseudonym, grant.client.platform, chosen, days
            )
        except (ValueError, InputError):
            return await run_in_threadpool(
                consent_page, request, lang, grant, signed_in[1], i18n.TEXT[lang]["bad_request"]
            )
        approval = consent_oauth.Approval(made)
        return answered(
            await run_in_threadpool(server.create_authorization_response, req, approval, grant)
        )

    @api.post("/oauth/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        form = await form_of(request)
        answer = await run_in_threadpool(server.create_token_response, http_request(request, form))
        status, body, headers = answer
        return Response(body, status_code=status, headers=dict(headers),
                        media_type="application/json")  # fmt: skip

    # Revoking from the citizen's page ----------------------------------------------------

    @api.post("/dashboard/me/grants/{grant_id}/revoke", include_in_schema=False)
    async def revoke(
        request: Request, grant_id: Annotated[str, Path_(min_length=1, max_length=40)]
    ) -> Response:
        lang = language(request)
        form = await form_of(request)
        signed_in = session(request)
        if signed_in is None or not hmac.compare_digest(first(form, "csrf"), signed_in[1]):
            return render("signin.html", lang, 401, next="/dashboard/me")
        try:
            await run_in_threadpool(consents.revoke, app, signed_in[0].pseudonym, grant_id)
        except NotFoundError:
            return JSONResponse({"detail": "no such grant"}, status_code=404)
        return RedirectResponse("/dashboard/me", status_code=303)

    # Erasing oneself ----------------------------------------------------------------------

    @api.post("/dashboard/me/erasure", include_in_schema=False)
    async def erase(request: Request) -> Response:
        lang = language(request)
        form = await form_of(request)
        signed_in = session(request)
        if signed_in is None or not hmac.compare_digest(first(form, "csrf"), signed_in[1]):
            return render("signin.html", lang, 401, next="/dashboard/me")
        if first(form, "confirm").strip() != "erase my account":
            return RedirectResponse("/dashboard/me#erase", status_code=303)
        try:
            done = await run_in_threadpool(
                erasure.erase_pseudonym, app, signed_in[0].pseudonym, "citizen", "own request"
            )
        except NotFoundError:
            done = None
        notice = i18n.TEXT[lang]["erased"].format(records=done.records if done else 0)
        response = render("signin.html", lang, next="/dashboard/me", notice=notice)
        response.delete_cookie(COOKIE)
        return response


def form_token(app: App, session_token: str) -> str:
    """The token a session's forms carry: derived from the session, unknown to other sites."""
    key = app.key("citizen-tokens")[1]
    return hmac.new(key, b"puhui form\x00" + session_token.encode(), hashlib.sha256).hexdigest()


def first(form: dict[str, list[str]], name: str) -> str:
    """A form field's first value, or the empty text."""
    values = form.get(name) or [""]
    return values[0]


def local(target: str) -> str:
    """Where to go after signing in: a path of this server, never another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard/me"
    return target
