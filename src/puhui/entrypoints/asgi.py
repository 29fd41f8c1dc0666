"""The ASGI application for servers (`uvicorn puhui.entrypoints.asgi:application`).

Configured from the environment like the command line: `PUHUI_DATABASE_URL`, `PUHUI_KEY_FILE`.
"""

from __future__ import annotations

from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.entrypoints.api import create_app

application = create_app(bootstrap(Settings.load()))
