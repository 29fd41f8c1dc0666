"""The settlement process of `puhui serve`: one process settles every worker's submissions.

Receive order is one queue (a group holds the receive-order counter until it commits), so
however many HTTP workers a server runs, their groups settle one at a time. Settled inside
each worker, a group also shares that worker's interpreter with request handling and waits
for it at every database round trip, and the workers' groups take turns on the counter.
`puhui serve` therefore starts one settlement process beside its workers: it runs the group
commit (`service.submissions.GroupCommit`) on its own interpreter, with submissions from every
worker in its groups, and the workers hand it their submissions over a local socket
(`multiprocessing.connection`, authenticated with a key made for the server's run).

The worker's side, `RemoteSettlement`, has `GroupCommit.settle`: a request awaits its receipts
on the worker's event loop, and gets what settlement raised (a replayed nonce as
`AuthenticationError`, no records as `InputError`, anything else as `SettlementFailed`). A
worker's requests share one connection, each message carrying its request's id, and the
settlement process reads each connection on one thread and answers on another as each group
commits: no thread waits per request on either side, and the settling thread never waits on a
worker's socket.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import multiprocessing
import multiprocessing.process
import os
import pickle
import secrets
import signal
import socket
import struct
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import suppress
from functools import partial
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.reduction import ForkingPickler
from multiprocessing.synchronize import Event
from pathlib import Path
from queue import Empty, SimpleQueue
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


def _outlive_no_server(server: int) -> None:
    """Stop this process once the server that started it is gone (killed, say, with no time
    to stop it): no worker can send anything any more, and what was being settled rolls
    back."""
    while os.getppid() == server:
        time.sleep(1)
    log.warning("the server is gone: the settlement process stops")
    os.kill(os.getpid(), signal.SIGTERM)


def run(database_url: str, key_file: str, address: str, authkey: bytes, ready: Event) -> None:
    """The settlement process: accept the workers' connections and settle what they send."""
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.entrypoints import observability
    from puhui.service import federation, ledger

    app = bootstrap(Settings(database_url, Path(key_file)))
    loop = GroupCommit(app, observe=observability.observe_group)
    # The server's one keeper of the ledger: sealed every few seconds, checkpointed every ten
    # minutes.
    keeper = ledger.Keeper(app)
    # A node of the common mechanism registers its claims from here (nothing, until it joins).
    syncer = federation.SyncLoop(app, log=log.warning)
    Path(address).unlink(missing_ok=True)  # left by a settlement process that died
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    keeper.start()
    syncer.start()
    threading.Thread(
        target=_outlive_no_server, args=(os.getppid(),), name="puhui-orphan", daemon=True
    ).start()
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
        syncer.stop()
        keeper.stop()
        app.close()


def _serve(loop: GroupCommit, connection: Connection) -> None:
    """Read one worker connection's submissions until it closes, queueing each for settlement
    as it arrives; each is answered, with its request's id, as soon as its group is settled. A
    worker's requests share its connection, so this process runs two threads per worker (this
    one, and one sending the answers, so that the settling thread never waits on a socket),
    not one per request."""
    answers: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()

    def sending() -> None:
        while True:
            # The answers ready (a group's, usually) go in one message.
            replies = [answers.get()]
            with suppress(Empty):
                while replies[-1] is not None:
                    replies.append(answers.get_nowait())
            done = replies[-1] is None
            if done:
                replies.pop()
            if replies:
                # The worker gone, nobody is waiting for the answers.
                with suppress(OSError):
                    connection.send(replies)
            if done:
                return

    def answer(ident: int, answered: Future[Submitted]) -> None:
        answers.put((ident, *_reply(answered)))

    sender = threading.Thread(target=sending, name="puhui-settler-send", daemon=True)
    sender.start()
    try:
        while True:
            try:
                requests = connection.recv()
            except (EOFError, OSError):
                return
            for ident, platform, records, nonce in requests:
                signed = Signed(platform, *nonce) if nonce is not None else None
                try:
                    future = loop.enqueue(platform, records, signed)
                except Exception as error:  # no records, or the loop is closed
                    future = Future()
                    future.set_exception(error)
                future.add_done_callback(partial(answer, ident))
    finally:
        answers.put(None)
        sender.join()
        connection.close()


def _reply(answered: Future[Submitted]) -> tuple[Any, ...]:
    """What a settled submission's worker is sent back: its receipts, or why not."""
    try:
        submitted = answered.result()
    except AuthenticationError as refused:
        return ("authentication", refused.code, str(refused))
    except InputError as refused:
        return ("input", str(refused))
    except Exception as error:
        # The kind of error only: a database's message may quote a submitted record.
        log.error("settlement failed", extra={"error": type(error).__name__})
        return ("failed", type(error).__name__)
    return ("ok", submitted.batch, submitted.receipts, submitted.credited_g)


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
    """A worker's client of the settlement process: `GroupCommit`'s `settle`, over a local
    socket. The worker's requests share one connection, each message carrying its request's id,
    so a request waits on the event loop, not on a thread of its own."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._channel: _Channel | None = None
        self._opening: asyncio.Lock | None = None
        self._opening_loop: asyncio.AbstractEventLoop | None = None

    async def settle(
        self, platform: str, records: Sequence[object], signed: Signed | None = None
    ) -> Submitted:
        """Settle one submission in the settlement process and wait for its receipts.

        Raises:
            InputError: no records.
            AuthenticationError: `replayed_nonce`, the request's nonce was used before;
                `revoked_key`, its key was revoked since it was verified.
            SettlementFailed: the group failed, or the settlement process is gone.
            multiprocessing.AuthenticationError: the process refused this client's key.
        """
        if not records:
            raise InputError("a submission holds at least one record")
        channel = await self._connected()
        reply = await channel.request((platform, list(records), signed.claim if signed else None))
        kind = reply[0]
        if kind == "ok":
            return Submitted(reply[1], reply[2], reply[3])
        if kind == "authentication":
            raise AuthenticationError(reply[1], reply[2])
        if kind == "input":
            raise InputError(reply[1])
        raise SettlementFailed(f"settlement failed ({reply[1]}); nothing of it was stored")

    async def _connected(self) -> _Channel:
        """The open channel of this event loop, opened (again) if there is none."""
        loop = asyncio.get_running_loop()
        channel = self._channel
        if channel is not None and channel.open and channel.loop is loop:
            return channel
        if self._opening is None or self._opening_loop is not loop:
            self._opening, self._opening_loop = asyncio.Lock(), loop
        async with self._opening:
            channel = self._channel
            if channel is None or not channel.open or channel.loop is not loop:
                try:
                    # The handshake proves both ends hold the run's key (blocking: off the loop).
                    handshake = await asyncio.to_thread(
                        Client, self.address, family="AF_UNIX", authkey=self.authkey
                    )
                except (OSError, EOFError) as error:
                    raise SettlementFailed("the settlement process is not answering") from error
                sock = socket.socket(fileno=os.dup(handshake.fileno()))
                handshake.close()
                reader, writer = await asyncio.open_unix_connection(sock=sock)
                channel = self._channel = _Channel(reader, writer)
        return channel

    async def aclose(self) -> None:
        """Close the connection."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class _Channel:
    """One connection to the settlement process, shared by a worker's requests. A message is a
    list of (request id, …): the requests made in one turn of the event loop travel together,
    as do the answers of one group, one write and one wake-up for all of them. Messages are
    framed as `multiprocessing.connection` frames them (a 4-byte big-endian length, then the
    pickle), which is what the settlement process reads and writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.loop = asyncio.get_running_loop()
        self.reader = reader
        self.writer = writer
        self.open = True
        self._next = 0
        self._waiting: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        self._answers = asyncio.create_task(self._read())

    async def request(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """Send a message with this turn's others and wait for its answer."""
        if not self.open:
            raise SettlementFailed("the settlement process is not answering")
        ident = self._next
        self._next += 1
        answer: asyncio.Future[tuple[Any, ...]] = self.loop.create_future()
        self._waiting[ident] = answer
        if not self._outbox:
            self.loop.call_soon(self._flush)
        self._outbox.append((ident, *message))
        try:
            return await answer
        finally:
            self._waiting.pop(ident, None)

    def _flush(self) -> None:
        """Send the requests of this turn of the loop as one message."""
        outbox, self._outbox = self._outbox, []
        data = bytes(ForkingPickler.dumps(outbox))
        # multiprocessing's framing: a signed 4-byte length, or -1 and an 8-byte one.
        size = len(data)
        header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)
        try:
            if self.writer.is_closing():
                raise ConnectionResetError("closed")
            self.writer.write(header + data)
        except OSError as error:
            self.open = False
            for ident, *_ in outbox:
                answer = self._waiting.get(ident)
                if answer is not None and not answer.done():
                    failed = SettlementFailed("the settlement process is not answering")
                    failed.__cause__ = error
                    answer.set_exception(failed)

    async def _read(self) -> None:
        try:
            while True:
                (size,) = struct.unpack("!i", await self.reader.readexactly(4))
                if size == -1:
                    (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
                # From the settlement process, which proved it holds the run's key.
                message = await self.reader.readexactly(size)
                for ident, *reply in pickle.loads(message):  # noqa: S301
                    answer = self._waiting.get(ident)
                    if answer is not None and not answer.done():
                        answer.set_result(tuple(reply))
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.open = False
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_exception(
                        SettlementFailed("the settlement process is not answering")
                    )
            self.writer.close()

    async def close(self) -> None:
        self.open = False
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()
        self._answers.cancel()
        with suppress(asyncio.CancelledError):
            await self._answers
