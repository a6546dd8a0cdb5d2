"""Shared measuring tools for bench/: medians of repeated timings, peers bounded by a
timeout in a child process, peak RSS, a server subprocess, and the machine's description.

Every figure in bench/ is ours next to a peer's, measured in the same run, so
that a noisy (shared) machine moves both sides alike; the ratio is what to read.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VERSIONED = ("numpy", "pandas", "pyarrow", "faiss-cpu", "hdbscan", "scikit-learn", "sliceline",
             "torch", "grpcio")


@dataclass
class Timing:
    """Median wall seconds of ``runs`` repetitions; ``timed_out`` when the bound was hit."""

    median_s: float
    runs: int
    all_s: list[float] = field(default_factory=list)
    timed_out: bool = False
    limit_s: float = 0.0
    value: Any = None              # what the last repetition returned (labels, slices, ...)
    failed: str = ""               # the peer's error, e.g. a MemoryError at a size it cannot hold

    @property
    def finished(self) -> bool:
        return not (self.timed_out or self.failed)

    def cell(self) -> str:
        if self.failed:
            return f"failed: {self.failed}"
        if self.timed_out:
            return f"did not finish in {self.limit_s:.0f} s"
        return f"{self.median_s:.3g}"


def repeat(fn: Callable[[], Any], reps: int, budget_s: float = 60.0) -> Timing:
    """Run ``fn`` up to ``reps`` times (fewer once ``budget_s`` is spent); median wall time."""
    times, value = [], None
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s:
            break
    return Timing(float(np.median(times)), len(times), times, value=value)


def _child(conn, fn, args):
    try:
        t0 = time.perf_counter()
        value = fn(*args)
        conn.send(("ok", time.perf_counter() - t0, value))
    except BaseException as exc:    # the parent reports it; a child must not die silently
        conn.send(("error", 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def repeat_bounded(fn: Callable, args: tuple, reps: int, limit_s: float,
                   budget_s: float = 60.0) -> Timing:
    """Like ``repeat`` but each run happens in a forked child killed after ``limit_s``.

    For peers that may take too long (or too much memory) at large sizes: the
    result says "did not finish in N s" instead of hanging the benchmark. The
    child's own time is measured, so the fork and result transfer are not counted.
    """
    ctx = mp.get_context("fork")
    times, value = [], None
    for _ in range(max(reps, 1)):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
        proc.start()
        child.close()
        if not parent.poll(limit_s):
            proc.kill()
            proc.join()
            return Timing(float("nan"), len(times), times, timed_out=True, limit_s=limit_s)
        status, seconds, value = parent.recv()
        proc.join()
        if status != "ok":
            return Timing(float("nan"), len(times), times, limit_s=limit_s, failed=str(value)[:120])
        times.append(seconds)
        if sum(times) > budget_s:
            break
    return Timing(float(np.median(times)), len(times), times, value=value, limit_s=limit_s)


def ratio(ours: Timing, peer: Timing) -> str:
    """Peer time / our time, as 'N.Nx' (>1: we are faster); '> N x' when the peer timed out."""
    if peer.failed:
        return "–"
    if peer.timed_out:
        return f"> {peer.limit_s / ours.median_s:.1f}x"
    return f"{peer.median_s / ours.median_s:.2f}x"


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB; this process by default."""
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS and the versions of the packages the figures depend on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "ram": ram,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}
    for name in VERSIONED:
        try:
            info[name] = pkg_metadata.version(name)
        except pkg_metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m blindspots_server` on loopback over a temporary data directory."""

    def __init__(self, data_dir: str | None = None):
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="blindspots-bench-")
        self.data_dir = data_dir or self._tmp.name
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        env = dict(os.environ, BLINDSPOTS_LOG_LEVEL="WARNING")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "service"), str(ROOT / "clients" / "python"),
                                             env.get("PYTHONPATH", "")])
        self.log = open(Path(self.data_dir).parent / f"server-{self.port}.log", "w") \
            if self._tmp is None else tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "blindspots_server", "--data-dir", self.data_dir,
                                      "--port", str(self.port)], env=env, stdout=self.log, stderr=self.log)
        from blindspots import Client
        self.client = Client(self.address)
        self.client.wait_ready(timeout=60)
        return self

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        self.log.close()
        if self._tmp is not None:
            self._tmp.cleanup()


# Packages whose versions move analysis results (the dependencies are not pinned): every
# fragment names the ones it ran with, so a rerun elsewhere can tell code from environment.
RESULT_PACKAGES = ("numpy", "scipy", "scikit-learn", "hdbscan", "faiss-cpu", "faiss-gpu", "torch",
                   "scikit-activeml", "umap-learn")


def environment_line() -> str:
    """"Packages: numpy 2.4.6, ..." for the installed ones of RESULT_PACKAGES."""
    from importlib import metadata

    found = []
    for name in RESULT_PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "Packages: " + ", ".join(found) + "."


def report(name: str, result: dict, fragment: Callable[[dict], str], write: bool) -> dict:
    """Print ``result`` as one JSON line, and with ``write`` its ``fragment`` as bench/results/<name>.md."""
    print(json.dumps(result))
    if write:
        print(write_fragment(name, fragment(result)))
    return result


def write_fragment(name: str, text: str) -> Path:
    """bench/results/<name>.md, which run_all.py merges into RESULTS.md, ending with the
    versions of the packages that move results (``environment_line``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text.rstrip("\n") + "\n\n" + environment_line() + "\n")
    return path


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a server subprocess, killing it if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
