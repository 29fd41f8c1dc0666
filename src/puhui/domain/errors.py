"""Every error puhui raises, under one root.

A command that cannot be done raises one of these; a batch never raises for a bad record, it
answers that record with a rejected receipt and goes on.

    PuhuiError
    ├── ConfigurationError        settings, key file or database not usable
    │   └── KeyMismatchError      the subject key is not the one this database was created with
    ├── MethodologyError          a methodology or factor file is invalid or ambiguous
    │   └── FactorNotFoundError   no factor for a key in a region, even after fallback
    ├── NotFoundError             a platform, account or record that does not exist
    ├── AlreadyExistsError        registering something that is already registered
    ├── InputError                a file or argument that cannot be read at all
    ├── AuthenticationError       a request whose signature, key, time or nonce is refused
    ├── ConsentError              a citizen's grant that does not allow the call (or none)
    ├── RateLimitedError          too many attempts of something limited (sign-in codes)
    ├── RefusedError              an account operation that may not be done (balance, stock, …)
    │   └── InsufficientBalance   the account holds less than the operation takes
    └── LedgerError               an entry that would break the ledger's invariants
        └── UnbalancedEntryError  postings of an entry do not sum to zero
"""

from __future__ import annotations


class PuhuiError(Exception):
    """Root of every error raised by puhui."""


class ConfigurationError(PuhuiError):
    """Settings, key file or database are not usable."""


class KeyMismatchError(ConfigurationError):
    """The subject key does not match the one the database was initialised with."""


class MethodologyError(PuhuiError):
    """A methodology or factor definition is invalid, inconsistent or ambiguous."""


class FactorNotFoundError(MethodologyError):
    """No emission factor for a key in a region, even after the region fallback."""


class NotFoundError(PuhuiError):
    """A platform, account or record that does not exist."""


class AlreadyExistsError(PuhuiError):
    """Registering something that already exists."""


class InputError(PuhuiError):
    """An input file or argument that cannot be read at all."""


class AuthenticationError(PuhuiError):
    """A request that cannot be attributed to a member platform.

    Attributes:
        code: why, as a stable code (see `puhui.domain.signing`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConsentError(PuhuiError):
    """A member platform's call on a citizen's account that the citizen's grant does not allow.

    Attributes:
        code: why (`consent_required`, `grant_revoked`, `grant_expired`,
            `insufficient_scope`; see `puhui.domain.consent`).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RateLimitedError(PuhuiError):
    """Too many attempts of something limited in time (sign-in codes sent to one number)."""


class BusyError(PuhuiError):
    """Work that needs the database to stand still for a moment found it changing each time it
    tried; nothing was done, and it can be run again."""


class RefusedError(PuhuiError):
    """An operation on a personal carbon account that may not be done now; nothing was changed.

    Attributes:
        code: why, as a stable code (`insufficient_balance`, `out_of_stock`, …).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InsufficientBalance(RefusedError):
    """The account holds less than the operation takes out of it (`insufficient_balance`).

    Attributes:
        held, needed: in `unit` (`g` or `pt`).
    """

    def __init__(self, held: int, needed: int, unit: str, message: str = "") -> None:
        message = message or f"{needed} {unit} are needed; the account holds {held} {unit}"
        super().__init__("insufficient_balance", message)
        self.held, self.needed, self.unit = held, needed, unit

    def saying(self, asked: str) -> InsufficientBalance:
        """The same refusal, saying what asked for the amount (`river-clean costs 500 g`)."""
        held, unit = self.held, self.unit
        return InsufficientBalance(
            held, self.needed, unit, f"{asked}; the account holds {held} {unit}"
        )


class LedgerError(PuhuiError):
    """An entry that would break the ledger's invariants."""


class UnbalancedEntryError(LedgerError):
    """The postings of an entry do not sum to zero."""
