"""The HTTP API: member platforms submit records and read their receipts; citizens, operators
and regulators read and operate accounts; anyone reads methodologies and rewards.

Every route calls the same service functions as the command line. Platform routes require a
signed request (`puhui.domain.signing`); a platform sees only its own records. Errors are
problem details (RFC 9457) carrying a stable `code`; a client's fault is always a 4xx.

    app               create_app, the request middleware, docs and security schemes
    errors            the table from exception to status and problem code, and its handlers
    deps              what routes depend on, as Annotated aliases (AppDep, CurrentPlatform, …)
    schemas           documents of the clearing: submissions, receipts, methodologies, statistics
    wallet_schemas    documents of personal accounts: holdings, rewards, operations
    platform, citizens, public, oversight, accounts, operations: a router each, by caller
"""

from puhui.entrypoints.api.app import MAX_BODY_BYTES, create_app
from puhui.entrypoints.api.schemas import MAX_BATCH, BalanceOut, Health, Submission

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "BalanceOut", "Health", "Submission", "create_app"]
