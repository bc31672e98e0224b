"""What installing semkit costs: disk, install time from a warm pip cache, and the first run's
time and peak memory (the one-time ONNX export included), for the base install and extras.

    python benchmarks/install_footprint.py [--variants base,torch,all] [--repeat 3] [--packages 25] [--keep DIR]

Each variant gets a fresh venv with semkit's wheel built from this checkout (the wheel carries
the default model's files, setup.py):

- ``base``: ``pip install semkit-*.whl``, one plain command;
- any other name: ``pip install 'semkit-*.whl[NAME]'``.

Reported per variant: the venv's size on disk (``du``) and, apart, what an empty venv already
holds (pip, setuptools); the wall time of the pip command (each variant is installed once to
fill pip's cache, then ``--repeat`` times from the warm cache: the median); then ``semkit embed
hello`` twice under ``/usr/bin/time -v`` on an empty cache directory, ``--repeat`` times: the
first run writes the model's ONNX graphs (fp32, then int8 on VNNI/AMX CPUs), the second finds
them (medians). ``--packages N`` lists the N largest
installed distributions of each variant (bytes of the files in their RECORD). Timing figures
depend on the machine's load: quote the CPU and ``/proc/loadavg`` printed with them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
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


_SIZES_BY_DISTRIBUTION = """
import importlib.metadata as md, json, os
sizes = {}
for dist in md.distributions():
    total = 0
    for f in dist.files or ():
        path = dist.locate_file(f)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    sizes[dist.metadata["Name"]] = total
print(json.dumps(sizes))
"""


def _install(variant: str, wheel: Path, venv: Path) -> float:
    """Wall seconds of the one pip command that installs ``variant`` into a new ``venv``."""
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    target = str(wheel) if variant == "base" else f"{wheel}[{variant}]"
    start = time.perf_counter()
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", target])
    return time.perf_counter() - start


def package_sizes(venv: Path) -> dict[str, float]:
    """MB on disk of each distribution installed in ``venv`` (its RECORD's files)."""
    import json

    sizes = json.loads(_run([str(venv / "bin" / "python"), "-c", _SIZES_BY_DISTRIBUTION]).stdout)
    return {name: size / 1e6 for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])}


def measure(variant: str, wheel: Path, work: Path, repeat: int) -> dict[str, float]:
    """Medians over ``repeat`` runs: warm-cache installs, and first runs each on an empty cache."""
    venv = work / f"venv-{variant}"
    _install(variant, wheel, venv)  # fills pip's cache (downloads, built wheels)
    install_s = statistics.median(_install(variant, wheel, venv) for _ in range(repeat))
    semkit = str(venv / "bin" / "semkit")
    firsts, agains = [], []
    for attempt in range(repeat):
        cache = work / f"cache-{variant}-{attempt}"
        env = {"SEMKIT_CACHE_DIR": str(cache), "SEMKIT_ONNX_DIR": str(cache / "onnx"), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
        firsts.append(_timed_run([semkit, "embed", "hello"], env))
        agains.append(_timed_run([semkit, "embed", "hello"], env))
        shutil.rmtree(cache, ignore_errors=True)
    return {"venv_mb": _du_mb(venv), "install_s": install_s,
            "first_run_s": statistics.median(t for t, _ in firsts),
            "first_run_peak_mb": statistics.median(m for _, m in firsts),
            "next_run_s": statistics.median(t for t, _ in agains),
            "next_run_peak_mb": statistics.median(m for _, m in agains)}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="base,all", help="comma-separated: base and/or extras names")
    ap.add_argument("--repeat", type=int, default=3, help="warm installs and first runs per variant (medians)")
    ap.add_argument("--packages", type=int, default=0, help="list the N largest installed packages per variant")
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them (default: a temporary folder)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="semkit-footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        dist = work / "dist"
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
              "-w", str(dist), str(ROOT)])
        wheel = next(dist.glob("semkit-*.whl"))
        print(f"cpu: {_cpu_model()}; wheel {wheel.name}: {wheel.stat().st_size / 1e6:.0f} MB")
        empty = work / "venv-empty"
        _run([sys.executable, "-m", "venv", str(empty)])
        empty_mb = _du_mb(empty)
        print(f"an empty venv (pip, setuptools): {empty_mb:.0f} MB, counted in 'venv MB'; 'adds MB' leaves it out")
        print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
        print(f"medians of {args.repeat}: warm-cache installs; first runs each with an empty cache")
        print(f"{'variant':<8} {'venv MB':>8} {'adds MB':>8} {'install s':>9} {'1st run s':>9} {'1st peak MB':>11} "
              f"{'next run s':>10} {'next peak MB':>12}")
        results: dict[str, dict[str, float]] = {}
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            r = results[variant] = measure(variant, wheel, work, args.repeat)
            print(f"{variant:<8} {r['venv_mb']:>8.0f} {r['venv_mb'] - empty_mb:>8.0f} {r['install_s']:>9.1f} "
                  f"{r['first_run_s']:>9.2f} {r['first_run_peak_mb']:>11.0f} {r['next_run_s']:>10.2f} "
                  f"{r['next_run_peak_mb']:>12.0f}", flush=True)
            if args.packages:
                sizes = package_sizes(work / f"venv-{variant}")
                top = list(sizes.items())[: args.packages]
                print("    " + ", ".join(f"{name} {mb:.1f}" for name, mb in top)
                      + f" (MB; {len(sizes)} distributions, {sum(sizes.values()):.0f} MB in all)")
        if "base" in results:
            for variant, r in results.items():
                if variant != "base":
                    print(f"base / {variant}: size {results['base']['venv_mb'] / r['venv_mb']:.2f}x, "
                          f"install time {results['base']['install_s'] / r['install_s']:.2f}x")
        print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
