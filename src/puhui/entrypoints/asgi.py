"""The ASGI application for servers (`uvicorn puhui.entrypoints.asgi:application`).

Configured from the environment like the command line: `PUHUI_DATABASE_URL`, `PUHUI_KEY_FILE`.
Under `puhui serve`, a worker lowers its scheduling priority by `PUHUI_WORKERS_NICE` (see
`puhui serve --workers-nice`): the settlement process, which settles every worker's
submissions one group at a time, then never waits for a core behind the workers. On two cores
that took single-record submissions on PostgreSQL from ×0.61 to ×0.66 of a bare endpoint.
"""

from __future__ import annotations

import os

from puhui.bootstrap import bootstrap
from puhui.config import WORKERS_NICE_ENV, Settings
from puhui.entrypoints.api import create_app

if nice := int(os.environ.get(WORKERS_NICE_ENV) or 0):
    os.nice(nice)

application = create_app(bootstrap(Settings.load()))
