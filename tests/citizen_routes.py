"""What each route needs, as the tests expect it, stated apart from the code they check: the
scope a member platform's token must hold, or the citizen's own session; which staff routes
only an operator may call."""

from __future__ import annotations

SCOPES = ["balance", "history", "history:all", "spend"]
# "session": the citizen's own session only (no member platform's token).
NEEDS = {
    ("GET", "/v1/me"): "balance",
    ("GET", "/v1/me/holdings"): "balance",
    ("GET", "/v1/me/history"): "history",
    ("GET", "/v1/me/credits/{entry_id}"): "history",
    ("GET", "/v1/me/credits/{entry_id}/proof"): "history",
    ("GET", "/v1/me/operations"): "history",
    ("POST", "/v1/me/redemptions"): "spend",
    ("POST", "/v1/me/retirements"): "spend",
    ("POST", "/v1/me/gifts"): "spend",
    ("GET", "/v1/me/grants"): "session",
    ("DELETE", "/v1/me/grants/{grant_id}"): "session",
    ("POST", "/v1/me/erasure"): "session",
}


def allowed(holder: str, needed: str) -> bool:
    """Whether a token (one scope, "every scope", or "session") may call a route needing
    `needed`."""
    if holder == "session":
        return True
    if needed == "session":
        return False
    held = SCOPES if holder == "every scope" else [holder]
    return needed in held or (needed == "history" and "history:all" in held)


# Staff routes a regulator may not call (they change something, or show platforms' health).
OPERATOR_ONLY = {
    ("GET", "/v1/oversight/platforms"),
    ("POST", "/v1/oversight/programmes"),
    ("POST", "/v1/oversight/rewards"),
    ("POST", "/v1/oversight/rewards/{code}/codes"),
    ("POST", "/v1/oversight/reversals"),
    ("POST", "/v1/oversight/jobs"),
    ("POST", "/v1/oversight/erasures"),
    ("GET", "/v1/oversight/review"),
    ("GET", "/v1/oversight/review/{seq}"),
    ("POST", "/v1/oversight/review/decisions"),
    ("POST", "/v1/oversight/review/expire"),
}
