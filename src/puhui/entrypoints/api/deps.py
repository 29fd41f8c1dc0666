"""What a route depends on, as `Annotated` aliases: the puhui `App` and the settlement of this
application (from `request.app.state`), and who is calling (`puhui.entrypoints.http` checks
them). Every dependency here runs on the event loop; a check that may block moves itself off
it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from puhui.bootstrap import App
from puhui.domain.consent import Scope
from puhui.entrypoints import http, settler
from puhui.service import citizens, credentials, oversight, submissions, wallet

# Under `puhui serve` one settlement process settles every worker's submissions; otherwise
# each application settles its own (see `create_app`).
Settlement = submissions.GroupCommit | settler.RemoteSettlement


async def puhui_app(request: Request) -> App:
    """The puhui application the HTTP application serves."""
    app: App = request.app.state.puhui
    return app


async def settlement(request: Request) -> Settlement:
    """What settles this application's submissions."""
    found: Settlement = request.app.state.settlement
    return found


AppDep = Annotated[App, Depends(puhui_app)]
SettlementDep = Annotated[Settlement, Depends(settlement)]
SignedDep = Annotated[credentials.Signed, Depends(http.signed)]
CurrentPlatform = Annotated[str, Depends(http.platform)]
# The unified social credit code of a company signing with its own key.
CurrentCompany = Annotated[str, Depends(http.company)]
# The citizen of a token whose grant allows the route (`domain.consent`): checked on each call.
BalanceReader = Annotated[citizens.Citizen, Depends(http.citizen_with(Scope.BALANCE))]
HistoryReader = Annotated[citizens.Citizen, Depends(http.citizen_with(Scope.HISTORY))]
Spender = Annotated[citizens.Citizen, Depends(http.citizen_with(Scope.SPEND))]
# The citizen's own session (not a member platform's token).
OwnCitizen = Annotated[citizens.Citizen, Depends(http.own_citizen)]
StaffDep = Annotated[oversight.Staff, Depends(http.staff)]


async def operator(staff: StaffDep) -> oversight.Staff:
    """A staff token with the operator role; any other role is forbidden."""
    http.require(staff, oversight.Role.OPERATOR)
    return staff


OperatorDep = Annotated[oversight.Staff, Depends(operator)]


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=wallet.MAX_KEY,
        pattern=r"^[\x21-\x7e]+$",
        description="Chosen by the client, unique per operation: a retry with the same key "
        "returns the first answer and changes nothing.",
    ),
]
