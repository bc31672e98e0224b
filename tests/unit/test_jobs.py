"""The server's background jobs: round-robin by key, and a cap on one key's jobs."""

from __future__ import annotations

import threading
import time

import pytest

from semkit.server.jobs import JobManager, Progress, TooManyJobs


def _wait_all(manager: JobManager, jobs: list, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(j.finished is None for j in jobs):
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.01)


def test_a_key_with_many_queued_jobs_does_not_starve_another() -> None:
    manager = JobManager(max_per_owner=100)
    gate = threading.Event()
    order: list[str] = []

    def work(owner: str):
        def run(_: Progress) -> None:
            gate.wait(10)
            order.append(owner)
        return run

    try:
        flood = [manager.submit("x", "flooder", None, work("flooder")) for _ in range(50)]
        admin = manager.submit("x", "admin", None, work("admin"))
        gate.set()
        _wait_all(manager, [*flood, admin])
    finally:
        manager.close()
    # The flooder's first job was already running; the admin's comes right after it.
    assert order.index("admin") <= 2, order[:5]


def test_one_key_may_hold_only_so_many_jobs() -> None:
    manager = JobManager(max_per_owner=3)
    gate = threading.Event()
    try:
        jobs = [manager.submit("x", "k", None, lambda _p: gate.wait(10)) for _ in range(3)]
        with pytest.raises(TooManyJobs):
            manager.submit("x", "k", None, lambda _p: None)
        other = manager.submit("x", "someone-else", None, lambda _p: None)  # the cap is per key
        gate.set()
        _wait_all(manager, [*jobs, other])
        manager.submit("x", "k", None, lambda _p: None)  # finished jobs free their slots
    finally:
        gate.set()
        manager.close()
