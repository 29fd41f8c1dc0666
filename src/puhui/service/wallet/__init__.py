"""Personal carbon accounts: what citizens do with what they earned (存储、抵消、交易).

Grams of CO2e and points live on the same double-entry ledger, in accounts of their own unit
(`g` or `pt`), and no entry ever mixes the two: grams are what a regulator counts, points are
an incentive a programme pays on top of them. Accounts, by kind:

- `citizen` (g): what a citizen holds; credited by intake, spent, given and retired from here;
- `retired` (g, one per citizen): grams retired against the citizen's own footprint. Nothing is
  ever taken out of it: retired grams cannot be spent, moved or retired again;
- `reward` (g or pt, one per part of a reward's stock): what citizens paid for a reward;
- `points` (pt, one per citizen and programme), `programme` (pt: minus all it awarded) and
  `expired` (pt: what expired unused, per programme).

By concept: `catalogue` (programmes and rewards), `transactions` (redeem, retire, give, reverse:
each one transaction under the client's idempotency key), `points` (the jobs that award and
expire points), `holdings` (what a citizen holds and did) and `certificates` (certificate ids
and their verification). The rules are `domain.accounts`'; storage is reached through the ports
`Rewards`, `Operations`, `Points` and `Reads` of `service.ports`.

Concurrency: every writer of balances takes rows in one order (citizens' own accounts, then
shared ones; a reward's part last), so concurrent operations queue and never deadlock; a debit
is a conditional update (`balance >= amount`), so no balance that may not be negative ever is;
a reward's stock and the account its price is paid into are kept in parts, so redemptions of a
popular reward each take a part of their own instead of queueing on one row, and none takes
from a part with nothing left.
"""

from puhui.domain.accounts import MAX_KEY, Outcome
from puhui.service.wallet.catalogue import (
    Programme,
    Reward,
    add_codes,
    add_programme,
    add_reward,
    get_reward,
    list_programmes,
    list_rewards,
)
from puhui.service.wallet.certificates import Certificate, certificate_id, verify_certificate
from puhui.service.wallet.holdings import Holdings, OperationView, holdings, operations
from puhui.service.wallet.points import JobReport, run_jobs
from puhui.service.wallet.transactions import redeem, retire, reverse, transfer

__all__ = [
    "MAX_KEY",
    "Certificate",
    "Holdings",
    "JobReport",
    "OperationView",
    "Outcome",
    "Programme",
    "Reward",
    "add_codes",
    "add_programme",
    "add_reward",
    "certificate_id",
    "get_reward",
    "holdings",
    "list_programmes",
    "list_rewards",
    "operations",
    "redeem",
    "retire",
    "reverse",
    "run_jobs",
    "transfer",
    "verify_certificate",
]
