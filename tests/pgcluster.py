"""Throwaway PostgreSQL clusters for tests and benchmarks.

This module owns the lifecycle of a disposable PostgreSQL server: locating the
server binaries, running ``initdb`` into a fresh temporary directory, starting
the server on a free loopback port with settings tuned for speed over
durability, creating empty databases in it, and stopping it again with nothing
left behind (no process, no files).

PostgreSQL refuses to run as root. When the current process is root, the
cluster is owned by, and run as, the dedicated system user ``puhui-pg``
(created on first use).

Setting ``PUHUI_TEST_PG_URL`` to an SQLAlchemy or libpq URL of an existing
server makes :class:`PgCluster` reuse that server instead of starting one:
``create_database`` then creates databases there, and ``stop`` drops them.

The module imports only the standard library. ``create_database`` uses
psycopg 3 when it is importable; for a cluster this module started, it falls
back to the ``psql`` client found next to the server binaries.

Example::

    with PgCluster() as cluster:
        url = cluster.create_database("app_test")
        engine = sqlalchemy.create_engine(url)
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "EXTERNAL_URL_ENV",
    "PG_SYSTEM_USER",
    "PgCluster",
    "PgClusterError",
    "find_pg_bindir",
]

EXTERNAL_URL_ENV = "PUHUI_TEST_PG_URL"
PG_SYSTEM_USER = "puhui-pg"
SUPERUSER = "postgres"
DEFAULT_DBNAME = "postgres"

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
# Settings of a cluster that loses no committed transaction, for benchmarks.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# Throwaway clusters trade durability for speed; pass `settings` to change any of these.
_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "logging_collector": "off",
}
_DBNAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
# Client variables that could redirect or reconfigure the tools we run.
_SCRUBBED_ENV = (
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGSERVICE",
    "PGOPTIONS",
)


class PgClusterError(RuntimeError):
    """A throwaway PostgreSQL cluster could not be set up, used or stopped."""


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def _candidate_bindirs() -> list[str]:
    candidates: list[str] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(os.path.dirname(on_path))
    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(versioned)
    return candidates


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Looks on ``PATH`` first, then under ``/usr/lib/postgresql/*/bin``,
    highest version first.
    """
    for bindir in _candidate_bindirs():
        if all(os.access(os.path.join(bindir, name), os.X_OK) for name in _REQUIRED_BINARIES):
            return Path(bindir)
    raise PgClusterError(
        "PostgreSQL server binaries are missing: no directory with initdb, "
        "pg_ctl and postgres was found on PATH or under "
        "/usr/lib/postgresql/*/bin. `make test` installs them "
        "(scripts/ensure-system-deps postgres); alternatively set "
        f"{EXTERNAL_URL_ENV} to the URL of an existing server."
    )


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_dbname(name: str) -> None:
    if not _DBNAME_RE.match(name):
        raise ValueError(
            f"invalid database name {name!r}: use 1-63 ASCII letters, digits "
            "and underscores, not starting with a digit"
        )


def _sqlalchemy_url(url: str) -> str:
    """Give a bare ``postgres(ql)://`` URL the psycopg 3 SQLAlchemy driver."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        parts = parts._replace(scheme="postgresql+psycopg")
    return urlunsplit(parts)


def _libpq_url(url: str) -> str:
    """Turn an SQLAlchemy URL into one libpq (and psycopg) accepts."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgresql+") or parts.scheme == "postgres":
        parts = parts._replace(scheme="postgresql")
    return urlunsplit(parts)


def _redact(url: str) -> str:
    """Hide the password of a URL shown in an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    argv = [useradd, "--system", "--no-create-home"]
    argv += ["--shell", "/usr/sbin/nologin", name]
    error = ""
    # Retried: parallel test processes may race to create the same user.
    for attempt in range(3):
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return pwd.getpwnam(name)
        except KeyError:
            error = f"useradd exited {result.returncode}: {result.stderr.strip()}"
        time.sleep(0.2 * (attempt + 1))
    raise PgClusterError(
        f"cannot create system user {name!r} to run PostgreSQL as "
        f"(PostgreSQL refuses to run as root): {error}"
    )


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(server log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie awaiting its reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _wait_exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class PgCluster:
    """A PostgreSQL cluster that lives only as long as a test session.

    ``url`` is an SQLAlchemy URL for the cluster's ``dbname`` database
    (``postgres`` unless told otherwise), reachable over TCP on 127.0.0.1 as
    the superuser ``postgres`` with trust authentication. It is set by
    ``start()``; with ``PUHUI_TEST_PG_URL`` set it is that URL and nothing is
    started.
    """

    def __init__(
        self,
        *,
        dbname: str = DEFAULT_DBNAME,
        external_url: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        _check_dbname(dbname)
        self._settings = {**_SERVER_SETTINGS, **(settings or {})}
        if external_url is None:
            external_url = os.environ.get(EXTERNAL_URL_ENV) or None
        self._dbname = dbname
        self._external_url = _sqlalchemy_url(external_url) if external_url is not None else None
        self._url: str | None = self._external_url
        self._created: list[str] = []
        self._bindir: Path | None = None
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._run_as: str | None = None
        self._started = False

    # -- public API ---------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when this object reuses a server given by URL."""
        return self._external_url is not None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's default database."""
        if self._url is None:
            raise PgClusterError("PgCluster is not started; call start() first")
        return self._url

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        if self.external:
            return urlsplit(self.url).port or 5432
        if self._port is None:
            raise PgClusterError("PgCluster is not started; call start() first")
        return self._port

    @property
    def data_dir(self) -> Path | None:
        """Data directory of a cluster this object started, else None."""
        return self._tmpdir / "data" if self._tmpdir is not None else None

    @property
    def log_path(self) -> Path | None:
        """Server log of a cluster this object started, else None."""
        return self._tmpdir / "server.log" if self._tmpdir is not None else None

    def start(self) -> PgCluster:
        """Create and start the cluster; a no-op for an external server."""
        if self.external or self._started:
            return self
        self._bindir = find_pg_bindir()
        if os.geteuid() == 0:
            self._run_as = _ensure_system_user(PG_SYSTEM_USER).pw_name
        tmpdir = Path(tempfile.mkdtemp(prefix="puhui-pg-"))
        self._tmpdir = tmpdir
        atexit.register(self.stop)
        try:
            self._prepare_tmpdir(tmpdir)
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server and delete its files (or drop created databases)."""
        atexit.unregister(self.stop)
        if self.external:
            self._drop_created_databases()
            return
        tmpdir, self._tmpdir = self._tmpdir, None
        started, self._started = self._started, False
        self._url = None
        self._port = None
        self._created.clear()
        if tmpdir is None:
            return
        data_dir = tmpdir / "data"
        try:
            if started or (data_dir / "postmaster.pid").exists():
                self._stop_server(data_dir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; return its SQLAlchemy URL."""
        _check_dbname(name)
        base = self.url
        self._admin_execute(f"CREATE DATABASE {_quote_ident(name)}")
        self._created.append(name)
        return _with_dbname(base, name)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._url if self._url is not None else "not started"
        return f"PgCluster({where})"

    # -- local cluster ------------------------------------------------------

    def _prepare_tmpdir(self, tmpdir: Path) -> None:
        (tmpdir / "sock").mkdir()
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            for path in (tmpdir, tmpdir / "sock"):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _command(self, argv: list[str]) -> list[str]:
        if self._run_as is None:
            return argv
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", self._run_as, "--", *argv]
        su = shutil.which("su") or "/bin/su"
        return [su, "-s", "/bin/sh", self._run_as, "-c", shlex.join(argv)]

    def _run(self, argv: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.setdefault("LC_ALL", "C")
        try:
            return subprocess.run(
                self._command(argv),
                cwd=self._tmpdir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PgClusterError(f"{shlex.join(argv)} timed out after {timeout:g}s") from exc

    def _bin(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _initdb(self) -> None:
        assert self._tmpdir is not None
        data_dir = self._tmpdir / "data"
        result = self._run(
            [
                self._bin("initdb"),
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        if result.returncode != 0:
            raise PgClusterError(
                f"initdb failed (exit {result.returncode}) in {data_dir}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _write_settings(self, port: int) -> None:
        assert self._tmpdir is not None
        settings = dict(self._settings)
        settings["port"] = str(port)
        settings["unix_socket_directories"] = f"'{self._tmpdir / 'sock'}'"
        # postgresql.auto.conf is read last, so rewriting it on each attempt
        # overrides earlier values; its ownership by the server user is kept.
        auto_conf = self._tmpdir / "data" / "postgresql.auto.conf"
        lines = [f"{key} = {value}" for key, value in settings.items()]
        auto_conf.write_text(
            "# Written by tests/pgcluster.py for a throwaway test cluster.\n"
            + "\n".join(lines)
            + "\n",
            encoding="utf-8",
        )

    def _start_server(self) -> None:
        assert self._tmpdir is not None
        data_dir = self._tmpdir / "data"
        log_path = self._tmpdir / "server.log"
        last_error = ""
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            self._write_settings(port)
            result = self._run(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-l",
                    str(log_path),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                timeout=90,
            )
            if result.returncode == 0:
                self._port = port
                self._started = True
                self._url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{self._dbname}"
                if self._dbname != DEFAULT_DBNAME:
                    self._admin_execute(
                        f"CREATE DATABASE {_quote_ident(self._dbname)}",
                        dbname=DEFAULT_DBNAME,
                    )
                return
            log_tail = _tail(log_path)
            last_error = (
                f"pg_ctl start failed (exit {result.returncode}) on port {port}:"
                f"\n{result.stdout}{result.stderr}\n"
                f"--- tail of {log_path} ---\n{log_tail}"
            )
            # A server that died may still be shutting down; make sure.
            if (data_dir / "postmaster.pid").exists():
                self._stop_server(data_dir)
            if "could not bind" not in log_tail and "in use" not in log_tail:
                break
        raise PgClusterError(last_error)

    def _stop_server(self, data_dir: Path) -> None:
        pid = self._postmaster_pid(data_dir)
        result = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(data_dir),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            timeout=60,
        )
        if pid is None:
            return
        if result.returncode != 0:
            # pg_ctl could not stop it: signal the postmaster directly.
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                return
        if not _wait_exited(pid, timeout=10):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            _wait_exited(pid, timeout=5)

    @staticmethod
    def _postmaster_pid(data_dir: Path) -> int | None:
        try:
            first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, IndexError, ValueError):
            return None

    # -- administration -----------------------------------------------------

    def _admin_execute(self, sql: str, *, dbname: str | None = None) -> None:
        """Run one statement outside a transaction (e.g. CREATE DATABASE)."""
        url = _libpq_url(self.url)
        if dbname is not None:
            url = _with_dbname(url, dbname)
        try:
            import psycopg
        except ImportError:
            self._psql_execute(url, sql)
            return
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.encode("utf-8"))
        except psycopg.Error as exc:
            raise PgClusterError(f"{sql!r} failed on {_redact(url)}: {exc}") from exc

    def _psql_execute(self, url: str, sql: str) -> None:
        psql = None
        if self._bindir is not None:
            candidate = self._bindir / "psql"
            if os.access(candidate, os.X_OK):
                psql = str(candidate)
        psql = psql or shutil.which("psql")
        if psql is None:
            raise PgClusterError(
                "neither psycopg nor psql is available to run "
                f"{sql!r}; install the project's dependencies (psycopg)"
            )
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        result = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise PgClusterError(f"{sql!r} failed on {_redact(url)}: {result.stderr.strip()}")

    def _drop_created_databases(self) -> None:
        errors: list[str] = []
        while self._created:
            name = self._created.pop()
            try:
                self._admin_execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
            except PgClusterError as exc:
                errors.append(str(exc))
        if errors:
            raise PgClusterError("could not drop test databases:\n" + "\n".join(errors))
