"""The pipeline an ingest runs on, kept warm between ingests (the API's groups settle one after
the other on one): a preparer per submitting platform, the DuckDB connection of settlement,
the ids that never change once committed, and the thread that reads and prepares the next
chunk while the current one settles."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb

from puhui.adapters.batch.prepare import ARROW_PREPARE, Preparer
from puhui.adapters.batch.sequential import SMALL_CHUNK, SMALL_PREPARE
from puhui.bootstrap import App
from puhui.service.admin import check_ready
from puhui.service.ports import IntakeStore


class Pipeline:
    """The engines an ingest runs on, kept warm between ingests: a preparer per submitting
    platform (its DuckDB connection, region table and quantifications so far) and the DuckDB
    connection of settlement. One ingest at a time.

    Chunks of up to `small_prepare` records are prepared, and chunks of up to `small_chunk`
    settled, by the statements of the rules themselves (`domain.intake`, `domain.settlement`).
    Larger chunks are prepared in Arrow kernels up to `prepare.ARROW_PREPARE` records and by
    DuckDB's statements beyond, and settled by DuckDB's statement: all give the same receipts,
    and the tests hold each rendering to the statements.
    """

    def __init__(
        self, app: App, small_chunk: int = SMALL_CHUNK, small_prepare: int | None = None
    ) -> None:
        self.app = app
        self.small_chunk = small_chunk
        # Preparing record by record overtakes DuckDB's fixed cost sooner than settling does.
        self.small_prepare = (
            min(small_chunk, SMALL_PREPARE) if small_prepare is None else small_prepare
        )
        self.settler = duckdb.connect()
        self._preparers: dict[str, Preparer] = {}
        self._ready = False
        # Never change once committed: platform ids by code, stored calculations' ids by key.
        self.platform_ids: dict[str, int] = {}
        self.quantification_ids: dict[str, int] = {}
        self.stored_quantifications: dict[str, int] = {}  # by the chunk not yet committed
        # Reading and preparing the next chunk (DuckDB, off the GIL) overlaps with settling and
        # storing the current one; at most one chunk waits prepared.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="puhui-prepare")

    def check_ready(self) -> None:
        """`admin.check_ready`, once per pipeline: a warm pipeline settles many groups."""
        if not self._ready:
            check_ready(self.app)
            self._ready = True

    def platform_id(self, store: IntakeStore, platform: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        if platform not in self.platform_ids:
            self.platform_ids[platform] = store.platform_id(platform)
        return self.platform_ids[platform]

    def platform_code(self, platform_id: int) -> str:
        """The code of a platform looked up through `platform_id` before."""
        return next(code for code, known in self.platform_ids.items() if known == platform_id)

    def preparer(self, platform: str) -> Preparer:
        """The preparer of a platform's records."""
        if platform not in self._preparers:
            self._preparers[platform] = Preparer(
                self.app.catalogue, self.app.secret, platform, self.small_prepare, ARROW_PREPARE
            )
        return self._preparers[platform]

    def close(self) -> None:
        """Release the engines."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        for preparer in self._preparers.values():
            preparer.close()
        self.settler.close()
