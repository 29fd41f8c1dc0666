"""The settlement process of `puhui serve`: one process settles every worker's submissions.

Receive order is one queue (a group holds the receive-order counter until it commits), so
however many HTTP workers a server runs, their groups settle one at a time. Settled inside
each worker, a group also shares that worker's interpreter with request handling and waits
for it at every database round trip, and the workers' groups take turns on the counter.
`puhui serve` therefore starts one settlement process beside its workers: it runs the group
commit (`service.submissions.GroupCommit`) on its own interpreter, with submissions from every
worker in its groups, and the workers hand it their submissions over a local socket
(`multiprocessing.connection`, authenticated with a key made for the server's run).

The worker's side, `RemoteSettlement`, has the interface of `GroupCommit`: `submit` blocks
until the receipts come back, and raises what settlement raised (a replayed nonce as
`AuthenticationError`, no records as `InputError`, anything else as `SettlementFailed`).
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import multiprocessing.process
import queue
import secrets
import threading
from collections.abc import Sequence
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from puhui.domain.errors import AuthenticationError, ConfigurationError, InputError, PuhuiError
from puhui.service.credentials import Signed
from puhui.service.submissions import GroupCommit, Submitted

log = logging.getLogger("puhui.settler")

ADDRESS_ENV = "PUHUI_SETTLER_ADDRESS"
KEY_ENV = "PUHUI_SETTLER_KEY"


class SettlementFailed(PuhuiError):
    """The settlement process failed a group (nothing of it was committed), or is gone."""


def main(database_url: str, key_file: str, address: str, authkey: bytes, ready: Event) -> None:
    """The settlement process's entry point: JSON log lines, as the workers', then `run`."""
    from puhui.entrypoints import observability

    logging.config.dictConfig(observability.log_config())
    run(database_url, key_file, address, authkey, ready)


def run(database_url: str, key_file: str, address: str, authkey: bytes, ready: Event) -> None:
    """The settlement process: accept the workers' connections and settle what they send."""
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.entrypoints import observability

    app = bootstrap(Settings(database_url, Path(key_file)))
    loop = GroupCommit(app, observe=observability.observe_group)
    Path(address).unlink(missing_ok=True)  # left by a settlement process that died
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    ready.set()
    try:
        while True:
            try:
                connection = listener.accept()
            except (OSError, EOFError, multiprocessing.AuthenticationError):
                # A client without the run's key, or gone during the handshake.
                log.warning("a connection to the settlement process was refused")
                continue
            threading.Thread(
                target=_serve, args=(loop, connection), name="puhui-settler", daemon=True
            ).start()
    finally:
        listener.close()
        loop.close()
        app.close()


def _serve(loop: GroupCommit, connection: Connection) -> None:
    """Answer one worker connection's submissions, one at a time, until it closes."""
    with connection:
        while True:
            try:
                platform, records, nonce = connection.recv()
            except (EOFError, OSError):
                return
            signed = Signed(platform, *nonce) if nonce is not None else None
            try:
                submitted = loop.submit(platform, records, signed)
                reply: tuple[Any, ...] = ("ok", submitted.batch, submitted.receipts)
            except AuthenticationError as refused:
                reply = ("authentication", refused.code, str(refused))
            except InputError as refused:
                reply = ("input", str(refused))
            except Exception as error:
                # The kind of error only: a database's message may quote a submitted record.
                log.error("settlement failed", extra={"error": type(error).__name__})
                reply = ("failed", type(error).__name__)
            connection.send(reply)


class SettlementProcess:
    """The settlement process of a server's run: started, watched (started again, at the same
    address, should it die: workers reconnect on their next submission) and stopped."""

    def __init__(self, database_url: str, key_file: str, folder: str) -> None:
        self.address = str(Path(folder) / "settle.sock")
        self.authkey = secrets.token_bytes(32)
        self._args = (database_url, key_file, self.address, self.authkey)
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._process = self._start()
        self._watch = threading.Thread(
            target=self._watching, name="puhui-settler-watch", daemon=True
        )
        self._watch.start()

    def _start(self) -> multiprocessing.process.BaseProcess:
        ready = self._context.Event()
        process = self._context.Process(
            target=main, args=(*self._args, ready), name="puhui-settler", daemon=True
        )
        process.start()
        if not ready.wait(60):
            process.terminate()
            raise ConfigurationError(
                f"the settlement process did not start (exit code {process.exitcode})"
            )
        return process

    def _watching(self) -> None:
        while not self._stopping.wait(1):
            if not self._process.is_alive() and not self._stopping.is_set():
                log.error("the settlement process stopped", extra={"exit": self._process.exitcode})
                try:
                    self._process = self._start()
                except ConfigurationError:
                    log.exception("the settlement process could not be started again")

    def stop(self) -> None:
        """Stop watching, then stop the process (the server's workers have stopped)."""
        self._stopping.set()
        self._watch.join()
        self._process.terminate()
        self._process.join(10)


class RemoteSettlement:
    """A worker's client of the settlement process: `GroupCommit`'s interface, over a local
    socket. Each thread submitting at a time uses a connection of its own, kept for reuse."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()

    def submit(
        self, platform: str, records: Sequence[object], signed: Signed | None = None
    ) -> Submitted:
        """Settle one submission in the settlement process and wait for its receipts.

        Raises:
            InputError: no records.
            AuthenticationError: `replayed_nonce`, the request's nonce was used before;
                `revoked_key`, its key was revoked since it was verified.
            SettlementFailed: the group failed, or the settlement process is gone.
        """
        if not records:
            raise InputError("a submission holds at least one record")
        connection = self._connection()
        try:
            connection.send((platform, list(records), signed.claim if signed else None))
            reply = connection.recv()
        except (EOFError, OSError) as error:
            connection.close()
            raise SettlementFailed("the settlement process is not answering") from error
        self._idle.put(connection)
        kind = reply[0]
        if kind == "ok":
            return Submitted(reply[1], reply[2])
        if kind == "authentication":
            raise AuthenticationError(reply[1], reply[2])
        if kind == "input":
            raise InputError(reply[1])
        raise SettlementFailed(f"settlement failed ({reply[1]}); nothing of it was stored")

    def _connection(self) -> Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return Client(self.address, family="AF_UNIX", authkey=self.authkey)

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
