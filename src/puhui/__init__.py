"""puhui: the clearing platform of the carbon-inclusion (碳普惠) common mechanism.

Member platforms send activity records; puhui normalises and pseudonymises them, quantifies
them with declared, versioned, region-specific methodologies, checks and deduplicates them
across platforms, credits personal carbon accounts on a double-entry ledger, and answers every
record with a receipt.
"""

from puhui.domain.errors import PuhuiError

__version__ = "0.1.0"

__all__ = ["PuhuiError", "__version__"]
