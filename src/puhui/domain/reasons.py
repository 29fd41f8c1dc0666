"""Receipt statuses and the stable reason codes that explain them.

A receipt's `reason` is one code, or several joined by `;` when a record fails several checks
(every failed check is reported, not only the first). The codes are part of the contract with
member platforms: they are never renamed or reused with another meaning. `docs/reasons.md` lists
them from this module.
"""

from __future__ import annotations

from enum import StrEnum

from puhui.domain.scenes import MAX_LINE


class Status(StrEnum):
    """What happened to a record."""

    CREDITED = "credited"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    # Spec v1.1: waiting for a second source or a review; ends credited or rejected (or, on a
    # node of the common mechanism, a duplicate: docs/federation.md).
    HELD = "held"


class Reason(StrEnum):
    """Why a record was rejected, found a duplicate, or credited less than computed."""

    # Reading and shape of the record.
    MALFORMED_ROW = "malformed_row"
    ROW_TOO_LONG = "row_too_long"
    INVALID_ENCODING = "invalid_encoding"
    MISSING_FIELD = "missing_field"
    ILL_TYPED_FIELD = "ill_typed_field"
    RECORD_ID_TOO_LONG = "record_id_too_long"
    ILL_TYPED_RECORD_ID = "ill_typed_record_id"
    PLATFORM_MISMATCH = "platform_mismatch"
    UNKNOWN_SCENE = "unknown_scene"
    UNKNOWN_REGION = "unknown_region"
    MALFORMED_SUBJECT = "malformed_subject"
    UNKNOWN_MATERIAL = "unknown_material"
    MISSING_MATERIAL = "missing_material"
    MISSING_DISTANCE = "missing_distance"
    MISSING_QUANTITY = "missing_quantity"
    MISSING_END = "missing_end"
    NEGATIVE_AMOUNT = "negative_amount"
    AMOUNT_TOO_SMALL = "amount_too_small"
    END_BEFORE_START = "end_before_start"
    START_IN_FUTURE = "start_in_future"
    # Plausibility rules.
    NON_POSITIVE_DURATION = "non_positive_duration"
    SPEED_IMPLAUSIBLE = "speed_implausible"
    DISTANCE_BELOW_STRAIGHT_LINE = "distance_below_straight_line"
    TRIP_TOO_LONG = "trip_too_long"
    # Quantification.
    NO_METHODOLOGY = "no_methodology"
    # One behaviour, one credit.
    CONFLICT = "conflict"
    DUPLICATE_REF = "duplicate_ref"
    DUPLICATE_OVERLAP = "duplicate_overlap"
    # Crediting.
    CAPPED = "capped"
    # Evidence and review (spec v1.1): why a record is held ...
    AWAITING_CORROBORATION = "awaiting_corroboration"
    REVIEW_REQUIRED = "review_required"
    DEVICE_SHARED = "device_shared"
    DEVICE_HOPPING = "device_hopping"
    VELOCITY = "velocity"
    VOLUME_OUTLIER = "volume_outlier"
    BURST = "burst"
    REPEATED_TRIP = "repeated_trip"
    # The common mechanism across nodes (docs/federation.md): held until the registry answers.
    AWAITING_REGISTRY = "awaiting_registry"
    # ... and how a held record ended.
    CORROBORATED = "corroborated"
    RELEASED = "released"
    CREDITED_UNCORROBORATED = "credited_uncorroborated"
    REJECTED_ON_REVIEW = "rejected_on_review"
    NOT_CORROBORATED = "not_corroborated"
    REGISTERED = "registered"
    DUPLICATE_FEDERATED = "duplicate_federated"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.MALFORMED_ROW: "The line or row could not be parsed (invalid JSON, not a JSON "
    "object, a CSV row of another width than the header's, a bare carriage return in an unquoted "
    "CSV cell).",
    Reason.ROW_TOO_LONG: f"The line is longer than {MAX_LINE // 2**20} MiB (a CSV row of several "
    "lines: together): it is not read.",
    Reason.INVALID_ENCODING: "The line (a line of the CSV row) is not UTF-8 text (files are "
    "UTF-8).",
    Reason.MISSING_FIELD: "A field required for every record is missing or empty.",
    Reason.ILL_TYPED_FIELD: "A field has the wrong type: a number or timestamp that does not "
    "parse, a timestamp without a UTC offset, or a day, time or offset that does not exist, or a "
    "year outside 1900–2999; a JSON object or array where the spec has a string or a number; a "
    "text holding a NUL character.",
    Reason.RECORD_ID_TOO_LONG: "`record_id` is longer than 128 characters.",
    Reason.ILL_TYPED_RECORD_ID: "`record_id` is not a string a receipt can be kept under: a JSON "
    "object or array, or a text holding a NUL character.",
    Reason.PLATFORM_MISMATCH: "`platform` is not the platform that submitted the record.",
    Reason.UNKNOWN_SCENE: "`scene` is not one of the nine scene codes.",
    Reason.UNKNOWN_REGION: "`region` is not a GB/T 2260 province or prefecture code.",
    Reason.MALFORMED_SUBJECT: "`subject` is neither a mainland mobile number nor a valid "
    "18-character resident ID number (check digit included).",
    Reason.UNKNOWN_MATERIAL: "`material` is not paper, plastic, metal, glass or textile.",
    Reason.MISSING_MATERIAL: "A recycling record without `material`.",
    Reason.MISSING_DISTANCE: "A trip without `distance_km`.",
    Reason.MISSING_QUANTITY: "An event without `quantity`.",
    Reason.MISSING_END: "A trip without `end`.",
    Reason.NEGATIVE_AMOUNT: "`distance_km` or `quantity` is below zero.",
    Reason.AMOUNT_TOO_SMALL: "`distance_km` or `quantity` is above zero but below a thousandth of "
    "its unit, the precision amounts are kept to: it would earn nothing.",
    Reason.END_BEFORE_START: "The trip ends before it starts.",
    Reason.START_IN_FUTURE: "`start` is later than the moment the record was received.",
    Reason.NON_POSITIVE_DURATION: "The trip lasts zero seconds or less.",
    Reason.SPEED_IMPLAUSIBLE: "Distance over duration is faster than the mode allows "
    "(bounds in docs/reasons.md).",
    Reason.DISTANCE_BELOW_STRAIGHT_LINE: "The distance is shorter than the straight line between "
    "the given origin and destination.",
    Reason.TRIP_TOO_LONG: "The trip lasts longer than 24 hours.",
    Reason.NO_METHODOLOGY: "No methodology in force covers this scene, region and date.",
    Reason.CONFLICT: "The same (platform, record_id) was received before with other content.",
    Reason.DUPLICATE_REF: "An earlier record of the same scene carries the same `ref`.",
    Reason.DUPLICATE_OVERLAP: "An earlier trip of the same citizen overlaps this one by more than "
    "half of the shorter interval.",
    Reason.CAPPED: "Credited up to the methodology's cap for the citizen, scene and period; "
    "`reduction_g` is what remained under the cap.",
    Reason.AWAITING_CORROBORATION: "Held: the evidence policy of the scene and region credits "
    "this platform's records only once an authoritative source reports the same behaviour.",
    Reason.REVIEW_REQUIRED: "Held: the evidence policy of the scene and region has every record "
    "of this platform reviewed by the exchange's operators.",
    Reason.DEVICE_SHARED: "Held: the record's device reported behaviours of too many citizens "
    "(thresholds in docs/fraud.md).",
    Reason.DEVICE_HOPPING: "Held: the citizen reported behaviours from too many devices.",
    Reason.VELOCITY: "Held: the citizen would have travelled between this trip and another "
    "faster than any transport allows.",
    Reason.VOLUME_OUTLIER: "Held: the citizen's records or amount of this scene on this China "
    "day are far beyond what one person does.",
    Reason.BURST: "Held: the platform reported far more records of this scene and region "
    "starting in this minute than it usually does.",
    Reason.REPEATED_TRIP: "Held: the citizen reported a trip of this scene with the same "
    "distance and duration, to the metre and second, before.",
    Reason.AWAITING_REGISTRY: "Held: this exchange's node registers the record's claim with "
    "the common mechanism's registry, which answers whether another node's record of the same "
    "behaviour came first (docs/federation.md).",
    Reason.CORROBORATED: "Credited after being held: an authoritative source reported the same "
    "behaviour.",
    Reason.RELEASED: "Credited after being held: released by a reviewer.",
    Reason.CREDITED_UNCORROBORATED: "Credited after being held: not corroborated within the "
    "policy's window, and the policy credits such records then.",
    Reason.REJECTED_ON_REVIEW: "Rejected after being held: refused by a reviewer.",
    Reason.NOT_CORROBORATED: "Rejected after being held: not corroborated within the policy's "
    "window.",
    Reason.REGISTERED: "Credited after being held: the registry answered that no other node's "
    "record of the same behaviour came before it.",
    Reason.DUPLICATE_FEDERATED: "A duplicate after being held: the registry answered that a "
    "record of the same behaviour reached another exchange's node first (same scene and `ref`, "
    "or the citizen's overlapping trip).",
}


def join(reasons: list[str]) -> str:
    """Join reason codes the way receipts carry them, without repeats, in order."""
    return ";".join(dict.fromkeys(r for r in reasons if r))
