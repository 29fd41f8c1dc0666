"""The relational schema, in SQLAlchemy Core: one source of truth for SQLite and PostgreSQL.

Who owns what:
- intake: `platforms`, `subjects` (pseudonyms only), `batches`, `records` (one row per
  (platform, record_id): the normalised record and its receipt), `quantifications` (every
  distinct calculation a credit was pinned to), `conflicts` and `unkeyed_rejections` (audit of
  refused submissions that have no record row of their own);
- ledger: `accounts`, `transfers` (append-only, one row per amount moved from one account to
  another, integer amounts: grams CO2e, or points between points accounts, never both) and
  `balances` (each account's transfers in less its transfers out);
- personal carbon accounts: `programmes` (how credited grams earn points) and `awards` (which
  credit earned which points), `rewards`, their stock and the accounts paid into in parts
  (`reward_stock`) and their coupon `reward_codes`, and `operations` (what
  a citizen or the operator did to an account, keyed by the client's idempotency key: the audit
  trail of redemptions, retirements, transfers and reversals);
- statistics: `tallies` (records, grams and participants per value of each dimension, kept as
  records are settled) and `tally_members` (which citizens a value has counted already);
- the common mechanism (`domain.federation`): on a node, `federation_link`,
  `federation_outbox` and `federation_claims`; on the registry, `common_nodes`,
  `common_batches` and `common_claims` (every node's claims in global order).

The tables written once per record or citizen (`records`, `transfers`, `accounts`, `balances`,
`conflicts`) carry no foreign-key constraints: a per-row check costs more than the insert
itself on PostgreSQL (about 7 µs a row here) and a bulk load writes millions of rows. Their
references are checked set-based by `puhui ledger verify` instead; the small tables keep theirs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

# Row ids that SQLite should keep as its rowid (fast appends) and PostgreSQL as BIGINT.
RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

platforms = Table(
    "platforms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=True),
    Column("company_id", Integer, ForeignKey("companies.id"), nullable=True),
    Column("key_id", String(40), nullable=False, unique=True),
    Column("secret_digest", String(64), nullable=False, comment="SHA-256 of the secret, hex"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("(platform_id is null) <> (company_id is null)", name="holder"),
)

staff_tokens = Table(
    "staff_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_digest", String(64), nullable=False, unique=True, comment="SHA-256, hex"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role in ('operator', 'regulator')", name="role"),
)

request_nonces = Table(
    "request_nonces",
    metadata,
    Column("key_id", String(40), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("seen_ms", BigInteger, nullable=False, comment="epoch milliseconds"),
    PrimaryKeyConstraint("key_id", "nonce"),
)
Index("ix_request_nonces_seen_ms", request_nonces.c.seen_ms)

subjects = Table(
    "subjects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pseudonym", String(64), nullable=False, unique=True, comment="HMAC-SHA256, hex"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("source", Text, nullable=False, comment="file name or API call"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("records", Integer, nullable=False, server_default=text("0")),
    Column("credited", Integer, nullable=False, server_default=text("0")),
    Column("duplicate", Integer, nullable=False, server_default=text("0")),
    Column("rejected", Integer, nullable=False, server_default=text("0")),
    Column("credited_g", BigInteger, nullable=False, server_default=text("0")),
)

quantifications = Table(
    "quantifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("methodology", String(96), nullable=False, comment="id@version"),
    Column("scene", String(16), nullable=False),
    Column("region", String(6), nullable=False),
    Column("material", String(16), nullable=False),
    Column("unit", String(16), nullable=False),
    Column("reduction_per_unit", Numeric(24, 9), nullable=False, comment="g CO2e per unit"),
    Column("trace", Text, nullable=False, comment="JSON: formulas, factors, sources, fallback"),
)

records = Table(
    "records",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=False, comment="receive order"),
    Column("batch_id", Integer, nullable=False),
    Column("platform_id", Integer, nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("digest", String(32), nullable=False, comment="of the normalised content"),
    Column("subject_id", Integer, nullable=True),
    Column("scene", String(16), nullable=True),
    Column("region", String(6), nullable=True),
    Column("start_ms", BigInteger, nullable=True, comment="epoch milliseconds, UTC"),
    Column("end_ms", BigInteger, nullable=True, comment="epoch milliseconds, UTC"),
    Column("amount_milli", BigInteger, nullable=True, comment="km, kg, count or kWh × 1000"),
    Column("material", String(16), nullable=True),
    Column("ref", String(256), nullable=True, comment="trimmed, case-folded"),
    Column("extra", Text, nullable=True, comment="JSON: coordinates, device"),
    Column("status", String(10), nullable=False),
    Column("reason", Text, nullable=False, server_default=text("''")),
    Column("detail", Text, nullable=True, comment="which fields were missing or ill-typed"),
    Column("reduction_g", BigInteger, nullable=False, server_default=text("0")),
    Column("methodology", String(96), nullable=True),
    Column("quantification_id", Integer, nullable=True),
    Column("duplicate_of", BigInteger, nullable=True, comment="seq of the earlier record"),
    Column("device", String(128), nullable=True, comment="the platform's device identifier"),
    UniqueConstraint("platform_id", "record_id"),
    # Comparisons, not `status in (…)`: SQLite builds an IN list for every row it checks.
    CheckConstraint(
        "status = 'credited' or status = 'duplicate' or status = 'rejected' or status = 'held'",
        name="status",
    ),
    CheckConstraint("reduction_g >= 0", name="reduction_g"),
    # A held record carries the grams it would credit (spec v1.1).
    CheckConstraint(
        "status = 'credited' or status = 'held' or reduction_g = 0", name="only_credited_earn"
    ),
)
Index("ix_records_subject_start", records.c.subject_id, records.c.start_ms)
# The fraud signals count a platform's records per region, scene and minute, and find the
# records of a device (`domain.signals`).
Index(
    "ix_records_platform_region_start",
    records.c.platform_id,
    records.c.region,
    records.c.scene,
    records.c.start_ms,
)
Index(
    "ix_records_device_start",
    records.c.device,
    records.c.start_ms,
    sqlite_where=text("device is not null"),
    postgresql_where=text("device is not null"),
)
Index(
    "ix_records_scene_ref",
    records.c.scene,
    records.c.ref,
    sqlite_where=text("ref is not null and status <> 'rejected'"),
    postgresql_where=text("ref is not null and status <> 'rejected'"),
)
# The database itself refuses a second credit for one (scene, ref).
Index(
    "uq_records_credited_ref",
    records.c.scene,
    records.c.ref,
    unique=True,
    sqlite_where=text("ref is not null and status = 'credited'"),
    postgresql_where=text("ref is not null and status = 'credited'"),
)
Index("ix_records_batch", records.c.batch_id)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("record_seq", BigInteger, nullable=False),
    Column("digest", String(32), nullable=False),
    Column("line", BigInteger, nullable=False),
)

unkeyed_rejections = Table(
    "unkeyed_rejections",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, ForeignKey("batches.id"), nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("record_id", String(128), nullable=True, comment="as sent, cut to 128 characters"),
    Column("reason", Text, nullable=False),
)

ACCOUNT_KINDS = (
    "citizen",
    "issuance",
    "points",
    "programme",
    "expired",
    "retired",
    "reward",
    "held",
    "pool",
    "units",
    "buffer",
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False, comment=", ".join(ACCOUNT_KINDS)),
    Column("subject_id", Integer, nullable=True, unique=True, comment="citizen accounts"),
    Column("platform_id", Integer, nullable=True, comment="issuance accounts"),
    Column("methodology", String(96), nullable=True, comment="issuance accounts: id@version"),
    Column("code", String(160), nullable=True, unique=True, comment="the other kinds"),
    Column("owner_id", Integer, nullable=True, comment="points and retired: the citizen's id"),
    Column("unit", String(2), nullable=False, server_default=text("'g'"), comment="g or pt"),
    UniqueConstraint("platform_id", "methodology"),
    CheckConstraint(
        "(kind = 'citizen' and subject_id is not null and unit = 'g') or "
        "(kind = 'issuance' and platform_id is not null and methodology is not null "
        "and unit = 'g') or "
        "(kind in ('points', 'programme', 'expired', 'retired', 'reward', 'held', 'pool', "
        "'units', 'buffer') and code is not null)",
        name="kind",
    ),
    CheckConstraint("unit in ('g', 'pt')", name="unit"),
)
Index("ix_accounts_owner_id", accounts.c.owner_id)

balances = Table(
    "balances",
    metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=False),
    Column("balance_g", BigInteger, nullable=False),
    # Balances change with every batch: room on each page keeps PostgreSQL's updates in place.
    postgresql_with={"fillfactor": 70},
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("debit_account_id", Integer, nullable=False, comment="the amount is taken from it"),
    Column("credit_account_id", Integer, nullable=False, comment="the amount is added to it"),
    Column("amount", BigInteger, nullable=False, comment="grams CO2e, or points (unit pt)"),
    Column("record_seq", BigInteger, nullable=True, comment="credits: the record credited"),
    Column("batch_id", Integer, nullable=True, comment="credits: the batch that settled it"),
    Column(
        "linked_to",
        BigInteger,
        nullable=True,
        comment="the first transfer of the entry it was posted with; null: it is the first",
    ),
    Column("operation_id", Integer, nullable=True, comment="the citizen operation it records"),
    # A release or a void names in `reverses` the pending hold it settles (`domain.ledger`).
    Column("reverses", BigInteger, nullable=True, comment="the transfer it reverses"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="points awarded"),
    Column(
        "commit_id",
        BigInteger,
        nullable=True,
        comment="the ledger commit (database transaction) that wrote it",
    ),
    CheckConstraint("amount > 0", name="positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
)
# The database itself refuses a second credit of one record.
Index(
    "uq_transfers_record_seq",
    transfers.c.record_seq,
    unique=True,
    sqlite_where=text("record_seq is not null"),
    postgresql_where=text("record_seq is not null"),
)
Index("ix_transfers_commit_id", transfers.c.commit_id)
Index("ix_transfers_debit_account_id", transfers.c.debit_account_id, transfers.c.id)
Index("ix_transfers_credit_account_id", transfers.c.credit_account_id, transfers.c.id)
Index(
    "ix_transfers_linked_to",
    transfers.c.linked_to,
    sqlite_where=text("linked_to is not null"),
    postgresql_where=text("linked_to is not null"),
)
Index(
    "uq_transfers_reverses",
    transfers.c.reverses,
    unique=True,
    sqlite_where=text("reverses is not null"),
    postgresql_where=text("reverses is not null"),
)

# The ledger proves itself (`domain.chain`, docs/ledger.md): every transaction that writes
# transfers is one commit; the sealer links commits into a hash chain; checkpoints sign its head.
# `transfers` and these three tables are append-only: triggers refuse UPDATE and DELETE
# (`APPEND_ONLY`, created by migration 0010).
APPEND_ONLY = ("transfers", "ledger_commits", "ledger_chain", "ledger_checkpoints")

ledger_commits = Table(
    "ledger_commits",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, comment="when its transaction wrote"),
)

ledger_chain = Table(
    "ledger_chain",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("commit_id", BigInteger, nullable=False, unique=True),
    Column("digest", String(64), nullable=False, comment="SHA-256 of its transfers, hex"),
    Column("chain", String(64), nullable=False, comment="SHA-256 linking it to the one before"),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=False, comment="the chain's head when signed"),
    Column("chain", String(64), nullable=False, comment="the chain value there, hex"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("key_version", Integer, nullable=False, comment="of the checkpoints key"),
    Column("signature", String(128), nullable=False, comment="Ed25519, hex"),
)

# Personal carbon accounts: points programmes, rewards, citizens' operations ---------------------

programmes = Table(
    "programmes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column(
        "platform_id",
        Integer,
        ForeignKey("platforms.id"),
        nullable=True,
        comment="the platform running it; null: the exchange's own",
    ),
    Column("points_per_kg", Numeric(18, 6), nullable=False, comment="points per 1 000 g credited"),
    Column("expiry_days", Integer, nullable=True, comment="points expire after; null: never"),
    Column(
        "certifies",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="its terms let the exchange certify its members' credits, paid in its points",
    ),
    Column(
        "starts_at",
        DateTime(timezone=True),
        nullable=False,
        comment="credits from this moment on earn points",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("points_per_kg > 0", name="rate"),
    CheckConstraint("expiry_days is null or expiry_days > 0", name="expiry"),
)

awards = Table(
    "awards",
    metadata,
    Column("programme_id", Integer, nullable=False),
    Column("credit_transfer_id", BigInteger, nullable=False),
    Column(
        "award_transfer_id", BigInteger, nullable=True, comment="null: the credit earned 0 points"
    ),
    Column("points", BigInteger, nullable=False, comment="what the credit earned, floored"),
    PrimaryKeyConstraint("programme_id", "credit_transfer_id"),
)

rewards = Table(
    "rewards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False, comment="coupon, tree or donation"),
    Column("issuer", Text, nullable=False, comment="the merchant, platform or project"),
    Column("project", Text, nullable=True, comment="planting or donation project"),
    Column("price_g", BigInteger, nullable=True),
    Column("price_points", BigInteger, nullable=True),
    Column(
        "programme_id",
        Integer,
        ForeignKey("programmes.id"),
        nullable=True,
        comment="whose points pay for it",
    ),
    Column(
        "stock",
        Integer,
        nullable=True,
        comment="made available so far (a coupon: its codes); null: unlimited",
    ),
    Column("per_citizen_limit", Integer, nullable=True),
    Column("valid_from", DateTime(timezone=True), nullable=True),
    Column("valid_to", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind in ('coupon', 'tree', 'donation')", name="kind"),
    CheckConstraint(
        "(price_g > 0 and price_points is null and programme_id is null) or "
        "(price_points > 0 and price_g is null and programme_id is not null)",
        name="price",
    ),
    CheckConstraint("stock is null or stock >= 0", name="stock"),
    CheckConstraint("kind <> 'coupon' or stock is not null", name="coupon_stock"),
    CheckConstraint("per_citizen_limit is null or per_citizen_limit > 0", name="limit"),
)

# A reward's stock, and the account its price is paid into, in parts (`domain.accounts`): the
# redemptions of one reward at the same moment each take a part of their own.
reward_stock = Table(
    "reward_stock",
    metadata,
    Column("reward_id", Integer, nullable=False),
    Column("shard", Integer, nullable=False),
    Column("account_id", Integer, nullable=False, comment="the account paid into"),
    Column("allotted", Integer, nullable=True, comment="units it may hand out; null: unlimited"),
    Column("taken", Integer, nullable=False, server_default=text("0"), comment="handed out"),
    Column("next_number", BigInteger, nullable=False, comment="the number it hands out next"),
    PrimaryKeyConstraint("reward_id", "shard"),
    CheckConstraint("taken >= 0 and (allotted is null or taken <= allotted)", name="taken"),
    # Taken from with every redemption: room on each page keeps PostgreSQL's updates in place.
    postgresql_with={"fillfactor": 70},
)

reward_codes = Table(
    "reward_codes",
    metadata,
    Column("reward_id", Integer, ForeignKey("rewards.id"), nullable=False),
    Column("ordinal", Integer, nullable=False, comment="handed out in this order"),
    Column("code", String(128), nullable=False),
    Column("operation_id", Integer, nullable=True, comment="the redemption it was handed to"),
    PrimaryKeyConstraint("reward_id", "ordinal"),
    UniqueConstraint("reward_id", "code"),
)
# The codes not handed out yet, in order: what a redemption claims from.
Index(
    "ix_reward_codes_unclaimed",
    reward_codes.c.reward_id,
    reward_codes.c.ordinal,
    sqlite_where=text("operation_id is null"),
    postgresql_where=text("operation_id is null"),
)

operations = Table(
    "operations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subject_id", Integer, nullable=False, comment="the citizen it is about"),
    Column("idempotency_key", String(128), nullable=False, comment="chosen by the client"),
    Column("kind", String(16), nullable=False),
    Column("request_digest", String(64), nullable=False, comment="SHA-256 of the request"),
    Column("reward_id", Integer, nullable=True),
    Column("actor", String(80), nullable=False, comment="who asked: platform or staff"),
    Column("result", Text, nullable=False, comment="JSON: what was done"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("subject_id", "idempotency_key"),
    CheckConstraint("kind in ('redeem', 'retire', 'transfer', 'reverse')", name="kind"),
)

TALLY_DIMENSIONS = ("all", "platform", "pair", "region", "province", "scene", "day", "month")

tallies = Table(
    "tallies",
    metadata,
    Column("dimension", String(12), nullable=False),
    Column(
        "key",
        String(40),
        nullable=False,
        comment="'' (all), platform id, 'reporter>first' platform ids (pair), region, "
        "province, scene, YYYY-MM-DD (day) or YYYY-MM (month), Asia/Shanghai",
    ),
    Column("status", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("grams", BigInteger, nullable=False, comment="credited"),
    Column(
        "participants",
        BigInteger,
        nullable=False,
        comment="distinct citizens credited, on the row of status credited and reason ''",
    ),
    PrimaryKeyConstraint("dimension", "key", "status", "reason"),
    CheckConstraint(
        "dimension in (" + ", ".join(f"'{d}'" for d in TALLY_DIMENSIONS) + ")", name="dimension"
    ),
    sqlite_with_rowid=False,
)

tally_members = Table(
    "tally_members",
    metadata,
    Column("subject_id", Integer, primary_key=True, autoincrement=False),
    Column(
        "counted",
        Text,
        nullable=False,
        comment="the values the citizen is counted in: sorted 'dimension=key', comma-separated",
    ),
)


# Erasures (`domain.erasure`) ---------------------------------------------------------------------

erasures = Table(
    "erasures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subject_id", Integer, nullable=False, comment="the account left without an owner"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by_role", String(16), nullable=False, comment="citizen or operator"),
    Column("grounds", Text, nullable=False, comment="why; never an identifier"),
    Column("records", BigInteger, nullable=False, comment="records whose details were deleted"),
    CheckConstraint("by_role in ('citizen', 'operator')", name="by_role"),
)


# Held records (spec v1.1, `domain.review`) ---------------------------------------------------

holds = Table(
    "holds",
    metadata,
    Column("record_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("platform_id", Integer, nullable=False),
    Column("reasons", Text, nullable=False, comment="the codes that held it, joined by ';'"),
    Column("evidence", Text, nullable=False, comment="JSON: what each signal measured"),
    Column("policy", String(64), nullable=True, comment="the evidence policy it waits under"),
    Column("grams", BigInteger, nullable=False, comment="the grams it held"),
    Column("held_at", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True), nullable=True, comment="corroboration deadline"),
    Column("corroborated_by", BigInteger, nullable=True, comment="seq of the authority's record"),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column(
        "decided_seq",
        BigInteger,
        nullable=True,
        comment="the first seq settled after the decision",
    ),
    Column("outcome", String(10), nullable=True, comment="credited, rejected or duplicate"),
    Column("outcome_reason", String(32), nullable=True),
    Column("decided_by", Text, nullable=True, comment="the reviewer, or the policy"),
    Column("note", Text, nullable=True, comment="the reviewer's reason"),
    CheckConstraint(
        "(decided_at is null and outcome is null) or "
        "(decided_at is not null and outcome in ('credited', 'rejected', 'duplicate') "
        "and decided_by is not null)",
        name="decided",
    ),
)
Index(
    "ix_holds_open",
    holds.c.held_at,
    sqlite_where=text("decided_at is null"),
    postgresql_where=text("decided_at is null"),
)
Index("ix_holds_platform_decided", holds.c.platform_id, holds.c.decided_at)


# Consent (`domain.consent`) -----------------------------------------------------------------

redirect_uris = Table(
    "redirect_uris",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("uri", Text, nullable=False, comment="where an authorization may send the citizen back"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("platform_id", "uri"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("grant_id", String(40), nullable=False),
    Column("kind", String(8), nullable=False),
    Column(
        "subject_id",
        Integer,
        ForeignKey("subjects.id"),
        nullable=False,
        comment="the citizen (an erased citizen's subject no longer leads to any number)",
    ),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("scopes", Text, nullable=True, comment="space-separated; grants only"),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="grants only"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False, comment="citizen, or operator:<name>"),
    Column("reason", Text, nullable=True),
    CheckConstraint("kind in ('grant', 'revoke')", name="kind"),
    CheckConstraint(
        "kind = 'revoke' or (scopes is not null and expires_at is not null)", name="grant_fields"
    ),
)
Index("ix_consent_events_grant_id", consent_events.c.grant_id)
Index("ix_consent_events_subject_id", consent_events.c.subject_id)

sign_in_codes = Table(
    "sign_in_codes",
    metadata,
    Column("challenge", String(64), primary_key=True),
    Column("pseudonym", String(64), nullable=False, comment="HMAC-SHA256, hex"),
    Column("code_digest", String(64), nullable=False, comment="keyed with consent-codes, hex"),
    Column("key_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("used_at", DateTime(timezone=True), nullable=True),
)
Index("ix_sign_in_codes_pseudonym", sign_in_codes.c.pseudonym, sign_in_codes.c.created_at)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_digest", String(64), primary_key=True, comment="keyed with consent-codes, hex"),
    Column("key_version", Integer, nullable=False),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("grant_id", String(40), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_digest", String(64), primary_key=True, comment="keyed with consent-codes, hex"),
    Column("key_version", Integer, nullable=False),
    Column("platform_id", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("grant_id", String(40), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, comment="the grant's expiry"),
    Column("used_at", DateTime(timezone=True), nullable=True, comment="exchanged: one use"),
)

# Carbon market (`domain.market`) -----------------------------------------------------------

companies = Table(
    "companies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uscc", String(18), nullable=False, unique=True, comment="unified social credit code"),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

market_operations = Table(
    "market_operations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("party", String(40), nullable=False, comment="'exchange', or 'company:<id>'"),
    Column("idempotency_key", String(128), nullable=False, comment="chosen by the client"),
    Column("kind", String(16), nullable=False),
    Column("request_digest", String(64), nullable=False, comment="SHA-256 of the request"),
    Column("actor", String(80), nullable=False, comment="who asked: staff or company"),
    Column("result", Text, nullable=False, comment="JSON: what was done"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("party", "idempotency_key"),
    CheckConstraint(
        "kind in ('certify', 'sell', 'transfer', 'retire', 'reverse', 'export', 'import', "
        "'return')",
        name="kind",
    ),
)

unit_batches = Table(
    "unit_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operation_id", Integer, ForeignKey("market_operations.id"), nullable=False),
    Column("exchange", String(2), nullable=False),
    Column("methodology", String(96), nullable=False, comment="id@version"),
    Column("region", String(6), nullable=False, comment="GB/T 2260 prefix"),
    Column("vintage", String(7), nullable=False, comment="the period certified, YYYY-MM"),
    Column("units", Integer, nullable=False),
    Column("buffer_units", Integer, nullable=False, comment="withheld against reversals"),
    Column("buffer_bp", Integer, nullable=False, comment="the buffer share, basis points"),
    Column("first_serial", BigInteger, nullable=False),
    Column("last_serial", BigInteger, nullable=False),
    Column("leaves", Integer, nullable=False, comment="credits in its Merkle tree"),
    Column("root", String(64), nullable=False, comment="Merkle root (RFC 9162), hex"),
    Column("units_account_id", Integer, nullable=True, comment="null: imported"),
    Column("buffer_account_id", Integer, nullable=True, comment="null: imported"),
    Column("certified_at", DateTime(timezone=True), nullable=False),
    Column(
        "imported",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="issued by another node (exchange): its credits and grams are there",
    ),
    CheckConstraint("units > 0 and buffer_units >= 0 and buffer_units <= units", name="units"),
    CheckConstraint("last_serial - first_serial + 1 = units", name="serials"),
    CheckConstraint(
        "(units_account_id is null) = imported and (buffer_account_id is null) = imported "
        "and (not imported or (leaves = 0 and buffer_units = 0))",
        name="imported",
    ),
    UniqueConstraint("exchange", "first_serial"),
)

pool_credits = Table(
    "pool_credits",
    metadata,
    Column("record_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("operation_id", Integer, ForeignKey("market_operations.id"), nullable=False),
    Column("subject_id", Integer, nullable=False),
    Column("pool_account_id", Integer, nullable=False),
    Column("grams", BigInteger, nullable=False, comment="the whole credit, certified once"),
    CheckConstraint("grams > 0", name="grams"),
)
Index("ix_pool_credits_pool_account_id", pool_credits.c.pool_account_id)

batch_credits = Table(
    "batch_credits",
    metadata,
    Column("batch_id", Integer, ForeignKey("unit_batches.id"), nullable=False),
    Column("position", Integer, nullable=False, comment="the leaf's index in the tree"),
    Column("record_seq", BigInteger, nullable=False),
    Column("grams", BigInteger, nullable=False, comment="of the credit, in this batch"),
    PrimaryKeyConstraint("batch_id", "position"),
    UniqueConstraint("batch_id", "record_seq"),
    CheckConstraint("grams > 0", name="grams"),
)
Index("ix_batch_credits_record_seq", batch_credits.c.record_seq)

batch_nodes = Table(
    "batch_nodes",
    metadata,
    Column("batch_id", Integer, ForeignKey("unit_batches.id"), nullable=False),
    Column("chunk", Integer, nullable=False, comment="leaves chunk × 1024 to chunk × 1024 + 1023"),
    Column("hash", String(64), nullable=False, comment="the Merkle root of those leaves, hex"),
    PrimaryKeyConstraint("batch_id", "chunk"),
)

unit_blocks = Table(
    "unit_blocks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, ForeignKey("unit_batches.id"), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column(
        "holder",
        String(10),
        nullable=False,
        comment=", ".join(("exchange", "company", "buffer", "retired", "cancelled", "abroad")),
    ),
    Column("company_id", Integer, ForeignKey("companies.id"), nullable=True),
    Column("retirement_id", Integer, nullable=True, comment="retired units: their retirement"),
    Column("node", String(16), nullable=True, comment="abroad: the node they went to or are at"),
    CheckConstraint("first <= last", name="range"),
    CheckConstraint(
        "holder in ('exchange', 'company', 'buffer', 'retired', 'cancelled', 'abroad')",
        name="holder",
    ),
    CheckConstraint(
        "(holder in ('company', 'retired')) = (company_id is not null) "
        "and (holder = 'retired') = (retirement_id is not null) "
        "and (holder = 'abroad') = (node is not null)",
        name="owner",
    ),
)
Index("ix_unit_blocks_holder", unit_blocks.c.holder, unit_blocks.c.company_id)
Index("ix_unit_blocks_batch_id", unit_blocks.c.batch_id, unit_blocks.c.first)

unit_moves = Table(
    "unit_moves",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operation_id", Integer, ForeignKey("market_operations.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("batch_id", Integer, nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("from_holder", String(10), nullable=True, comment="null: issued"),
    Column("from_company", Integer, nullable=True),
    Column("to_holder", String(10), nullable=False),
    Column("to_company", Integer, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("node", String(16), nullable=True, comment="to or from another node's registry"),
    CheckConstraint("first <= last", name="range"),
    CheckConstraint(
        "kind in ('issue', 'sell', 'transfer', 'retire', 'cancel', 'export', 'import', "
        "'return', 'recognise')",
        name="kind",
    ),
)
Index("ix_unit_moves_batch_id", unit_moves.c.batch_id)

unit_trades = Table(
    "unit_trades",
    metadata,
    Column(
        "operation_id",
        Integer,
        ForeignKey("market_operations.id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("company_id", Integer, ForeignKey("companies.id"), nullable=False),
    Column("units", Integer, nullable=False),
    Column("unit_price_fen", BigInteger, nullable=False, comment="CNY cents a unit"),
    Column("at", DateTime(timezone=True), nullable=False),
    CheckConstraint("units > 0 and unit_price_fen >= 0", name="trade"),
)

unit_retirements = Table(
    "unit_retirements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "operation_id", Integer, ForeignKey("market_operations.id"), nullable=False, unique=True
    ),
    Column("company_id", Integer, ForeignKey("companies.id"), nullable=False),
    Column("units", Integer, nullable=False),
    Column("beneficiary", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    CheckConstraint("units > 0", name="units"),
)

buffer_draws = Table(
    "buffer_draws",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("operation_id", Integer, ForeignKey("market_operations.id"), nullable=False),
    Column("record_seq", BigInteger, nullable=False, comment="the certified credit reversed"),
    Column("batch_id", Integer, nullable=True, comment="null: its grams still in the pool"),
    Column("grams", BigInteger, nullable=False, comment="of the credit, in the batch or pool"),
    Column("drawn_g", BigInteger, nullable=False, comment="from the buffer, or the pool"),
    Column("shortfall_g", BigInteger, nullable=False, comment="what the buffer could not cover"),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("record_seq", "batch_id"),
    CheckConstraint("drawn_g + shortfall_g = grams and shortfall_g >= 0", name="draw"),
)


# The common mechanism across nodes (`domain.federation`, docs/federation.md) -----------------
# A node's side: its link to the registry, the batches it sent (kept as sent, to be sent again
# until answered) and each record's claim with the registry's answer.

federation_link = Table(
    "federation_link",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("node", String(16), nullable=False, comment="this node's code"),
    Column("url", Text, nullable=False, comment="the registry's base URL"),
    Column("registry_key", String(64), nullable=False, comment="its Ed25519 public key, hex"),
    Column("joined_seq", BigInteger, nullable=False, comment="the first record registered"),
    Column("through_seq", BigInteger, nullable=False, comment="records sent up to this seq"),
    Column("next_batch", Integer, nullable=False, comment="the number of the next batch"),
    Column(
        "certified_batch",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="certified credits sent up to this batch of units…",
    ),
    Column(
        "certified_position",
        Integer,
        nullable=False,
        server_default=text("-1"),
        comment="…and this leaf of it",
    ),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Column(
        "issued_through",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="batches of units registered up to this one",
    ),
    Column(
        "inbox_through",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="units received up to this move of the registry",
    ),
    Column("oversight", Text, nullable=True, comment="JSON: the registry's latest figures"),
    Column("oversight_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("id = 1", name="one"),
)

# Units sent to other nodes' registries: each is a transfer of the protocol, sent in a batch;
# one the registry refuses comes back to the company that sent it.
federation_sends = Table(
    "federation_sends",
    metadata,
    Column("transfer", Integer, primary_key=True, autoincrement=False, comment="1, 2, …"),
    Column("operation_id", Integer, ForeignKey("market_operations.id"), nullable=False),
    Column("batch_id", Integer, ForeignKey("unit_batches.id"), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("company_id", Integer, ForeignKey("companies.id"), nullable=False, comment="sender"),
    Column("to_node", String(16), nullable=False),
    Column("to_company", String(18), nullable=False, comment="unified social credit code"),
    Column("to_name", Text, nullable=False),
    Column("sent_in", Integer, nullable=True, comment="the batch of the protocol that sent it"),
    Column("refused", String(32), nullable=True, comment="the registry's reason"),
    CheckConstraint("first <= last", name="range"),
)

federation_outbox = Table(
    "federation_outbox",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False, comment="the batch exactly as signed"),
    Column("events", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("answer", Text, nullable=True, comment="the registry's answer, as signed"),
    Column("signature", String(128), nullable=True, comment="the registry's, hex"),
)

federation_claims = Table(
    "federation_claims",
    metadata,
    Column("record_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("claim_id", String(40), nullable=False, unique=True),
    Column("batch", Integer, nullable=False),
    Column("withdrawn_in", Integer, nullable=True, comment="the batch that withdrew it"),
    Column("position", BigInteger, nullable=True, comment="in the registry's global order"),
    Column("verdict", String(10), nullable=True, comment="first or duplicate"),
    Column("reasons", Text, nullable=True),
    Column("of_node", String(16), nullable=True),
    Column("of_claim", String(40), nullable=True),
    Column("certified", Integer, nullable=False, server_default=text("0"), comment="batches"),
    Column("certify_refused", String(32), nullable=True, comment="the registry's reason"),
    CheckConstraint("verdict is null or verdict in ('first', 'duplicate')", name="verdict"),
)
Index("ix_federation_claims_batch", federation_claims.c.batch)

# The registry's side: its member nodes, the batches each sent (with the answer given, so that
# a batch sent again is answered the same) and every claim in global order.

common_nodes = Table(
    "common_nodes",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("public_key", String(64), nullable=False, comment="Ed25519, hex"),
    Column("fingerprint", String(32), nullable=False, comment="of its claims key"),
    Column("next_batch", Integer, nullable=False, server_default=text("1")),
    Column("tallies", Text, nullable=False, server_default=text("'{}'"), comment="JSON, latest"),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=True),
)

common_batches = Table(
    "common_batches",
    metadata,
    Column("node", String(16), nullable=False),
    Column("number", Integer, nullable=False),
    Column("digest", String(64), nullable=False, comment="SHA-256 of the batch, hex"),
    Column("answer", Text, nullable=False, comment="the answer, exactly as signed"),
    Column("signature", String(128), nullable=False, comment="the registry's, hex"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("node", "number"),
)

common_claims = Table(
    "common_claims",
    metadata,
    Column("position", RowId, primary_key=True, autoincrement=False, comment="global order"),
    Column("node", String(16), nullable=False),
    Column("claim_id", String(40), nullable=False),
    Column("batch", Integer, nullable=False),
    Column("ref", String(64), nullable=True),
    Column("citizen", String(64), nullable=True),
    Column("start_ms", BigInteger, nullable=True),
    Column("end_ms", BigInteger, nullable=True),
    Column("verdict", String(10), nullable=False),
    Column("reasons", Text, nullable=False, server_default=text("''")),
    Column("of_position", BigInteger, nullable=True),
    Column("withdrawn_at", BigInteger, nullable=True, comment="the position it stopped at"),
    UniqueConstraint("node", "claim_id"),
    CheckConstraint("verdict in ('first', 'duplicate')", name="verdict"),
)
Index("ix_common_claims_ref", common_claims.c.ref)
Index("ix_common_claims_citizen_start", common_claims.c.citizen, common_claims.c.start_ms)

# The methodology versions a node registered with the registry (by fingerprint), and what the
# registry said of each.
federation_methodologies = Table(
    "federation_methodologies",
    metadata,
    Column("ref", String(96), nullable=False, comment="id@version"),
    Column("fingerprint", String(64), nullable=False),
    Column("batch", Integer, nullable=False, comment="the batch of the protocol that sent it"),
    Column("verdict", String(10), nullable=True, comment="added, recognised or differs"),
    PrimaryKeyConstraint("ref", "fingerprint"),
)

# The shared methodology catalogue (`domain.federation.SharedCatalogue`): each version as the
# node that added it defined it, and each node's registrations with the verdict.
common_methodologies = Table(
    "common_methodologies",
    metadata,
    Column("ref", String(96), primary_key=True, comment="id@version"),
    Column("fingerprint", String(64), nullable=False),
    Column("node", String(16), nullable=False, comment="the node that added it"),
    Column("at", DateTime(timezone=True), nullable=False),
)

common_methodology_nodes = Table(
    "common_methodology_nodes",
    metadata,
    Column("node", String(16), nullable=False),
    Column("ref", String(96), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("verdict", String(10), nullable=False),
    Column("batch", Integer, nullable=False),
    PrimaryKeyConstraint("node", "ref", "fingerprint"),
    CheckConstraint("verdict in ('added', 'recognised', 'differs')", name="verdict"),
)

# Batches of units the nodes issued, and which node's registry holds each unit now
# (`domain.federation.Custody`), and every move between nodes, numbered: a node reads the moves
# to it after the last one it applied (its inbox).
common_unit_batches = Table(
    "common_unit_batches",
    metadata,
    Column("origin", String(16), nullable=False, comment="the node that issued it"),
    Column("root", String(64), nullable=False, comment="its Merkle root, hex"),
    Column("methodology", String(96), nullable=False),
    Column("region", String(6), nullable=False),
    Column("vintage", String(7), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("batch", Integer, nullable=False, comment="the node's batch that registered it"),
    PrimaryKeyConstraint("origin", "root"),
)

common_unit_blocks = Table(
    "common_unit_blocks",
    metadata,
    Column("origin", String(16), nullable=False),
    Column("root", String(64), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("node", String(16), nullable=False, comment="whose registry holds them"),
    PrimaryKeyConstraint("origin", "root", "first"),
)

common_transfers = Table(
    "common_transfers",
    metadata,
    Column("number", RowId, primary_key=True, autoincrement=False, comment="the registry's"),
    Column("sender", String(16), nullable=False),
    Column("transfer", Integer, nullable=False, comment="the sender's number for it"),
    Column("origin", String(16), nullable=False),
    Column("root", String(64), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("to_node", String(16), nullable=False),
    Column("company", String(18), nullable=False),
    Column("name", Text, nullable=False),
    Column("batch", Integer, nullable=False, comment="the sender's batch that sent it"),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("sender", "transfer"),
)
Index("ix_common_transfers_to_node", common_transfers.c.to_node, common_transfers.c.number)

# Which node certified which of its claims' credits into which batch of units (by its root).
common_certifications = Table(
    "common_certifications",
    metadata,
    Column("node", String(16), nullable=False),
    Column("claim_id", String(40), nullable=False),
    Column("root", String(64), nullable=False, comment="the batch of units' Merkle root, hex"),
    Column("batch", Integer, nullable=False, comment="the node's batch that registered it"),
    PrimaryKeyConstraint("node", "claim_id", "root"),
)


# Restatements (`domain.restatement`, docs/methodologies/README.md) -----------------------------
# A correction of a methodology restates the credits its superseded versions computed: one
# restatement per target version, resumed until done; what it changed, per credit; and what it
# posted, per account and platform (a citizen's account, or a certified credit's batch buffer or
# pool), as one `restated` transfer each.

restatements = Table(
    "restatements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("methodology", String(96), nullable=False, unique=True, comment="id@version, target"),
    Column("superseded", Text, nullable=False, comment="the id@version it restates, ', '-joined"),
    Column("actor", String(128), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True, comment="null: resumable"),
)

restatement_postings = Table(
    "restatement_postings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("restatement_id", Integer, ForeignKey("restatements.id"), nullable=False),
    Column("account_id", Integer, nullable=False, comment="citizen, buffer or pool account"),
    Column("platform_id", Integer, nullable=False, comment="whose issuance account it moves"),
    Column("delta_g", BigInteger, nullable=False, comment="the credits' change, signed"),
    Column("posted_g", BigInteger, nullable=False, comment="what moved, signed"),
    Column("transfer_id", BigInteger, nullable=True, comment="null: nothing moved"),
    CheckConstraint(
        "(posted_g = 0) = (transfer_id is null) and posted_g * delta_g >= 0 "
        "and abs(posted_g) <= abs(delta_g) and (posted_g = delta_g or delta_g < 0)",
        name="posted",
    ),
)

Index("ix_restatement_postings_transfer_id", restatement_postings.c.transfer_id)

restated_credits = Table(
    "restated_credits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("restatement_id", Integer, ForeignKey("restatements.id"), nullable=False),
    Column("record_seq", BigInteger, nullable=False),
    Column("posting_id", Integer, ForeignKey("restatement_postings.id"), nullable=True),
    Column("before_quantification_id", Integer, nullable=False),
    Column("quantification_id", Integer, nullable=False, comment="the calculation now"),
    Column("methodology", String(96), nullable=False, comment="id@version now"),
    Column("grams_before", BigInteger, nullable=False),
    Column("grams", BigInteger, nullable=False, comment="credited now"),
    Column("after_seq", BigInteger, nullable=False, comment="records received before it"),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("restatement_id", "record_seq"),
    CheckConstraint("grams >= 0 and grams_before >= 0", name="grams"),
    CheckConstraint("(grams = grams_before) = (posting_id is null)", name="posting"),
)
Index("ix_restated_credits_record_seq", restated_credits.c.record_seq, restated_credits.c.id)
