"""`puhui serve`: the HTTP API under uvicorn, with the settlement process its workers hand
their submissions to, both found by the workers through the environment and stopped with the
server. The server's libraries are imported when the command runs, not when `puhui` starts."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Annotated

import typer

from puhui.config import WORKERS_NICE_ENV, Settings
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    workers_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="With 2 workers or more, how much lower their scheduling priority is than the "
            "settlement process's (a nice increment): it settles every worker's submissions "
            "one group at a time, and should not wait for a core behind them.",
        ),
    ] = 5,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import tempfile

    import uvicorn

    from puhui.entrypoints.observability import log_config

    with application(db, key_file) as a:
        admin.check_ready(a)
        settings = a.settings
    # The workers are separate processes: they find the database and key in the environment,
    # and add their metrics up in a shared folder.
    os.environ["PUHUI_DATABASE_URL"] = settings.database_url
    os.environ["PUHUI_KEY_FILE"] = str(settings.key_file.resolve())
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # The workers and the settlement process add their metrics up here; removed when
            # the server stops.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="puhui-metrics-")
            )
        _start_settler(stack, settings)
        if workers > 1:
            # Taken by each worker process as it starts (`entrypoints.asgi`). A single worker
            # runs in this process, which starts the settlement process again should it stop:
            # left alone, so that a new settlement process does not inherit a worker's priority.
            os.environ[WORKERS_NICE_ENV] = str(workers_nice)
        out.print(f"puhui API on http://{host}:{port}  (docs http://{host}:{port}/docs)")
        # uvicorn stops gracefully on SIGTERM, then raises it again as it found it handled:
        # as an exit, so that the settlement process is stopped on the way out, not orphaned.
        signal.signal(signal.SIGTERM, _exit)
        uvicorn.run(
            "puhui.entrypoints.asgi:application",
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(),
            access_log=False,
        )


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_settler(stack: contextlib.ExitStack, settings: Settings) -> None:
    """Start the settlement process (`entrypoints.settler`) for the server's workers, watched
    and stopped with the server; the workers find it through the environment."""
    import tempfile

    from puhui.entrypoints import settler

    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="puhui-settler-"))
    process = settler.SettlementProcess(
        settings.database_url, str(settings.key_file.resolve()), folder
    )
    stack.callback(process.stop)
    os.environ[settler.ADDRESS_ENV] = process.address
    os.environ[settler.KEY_ENV] = process.authkey.hex()
