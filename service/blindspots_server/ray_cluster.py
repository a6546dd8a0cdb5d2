"""Heavy steps on a Ray cluster: the methods of :class:`core.parallel.InProcess`, as Ray tasks and actors.

``blindspots serve --ray-address auto|HOST:PORT`` connects the server to a
running cluster (``ray start --head`` ..., or a KubeRay RayCluster); the
diagnosis's row-level kNN search runs as tasks and a pool's index shards live
in actors spread over the nodes (core/sharded_index.py). Ray schedules and
moves the data; this module only adapts its API. Without an address nothing
here is imported and the same core code runs in the server's process.

The cluster's workers import ``blindspots_server`` as the server does: install
the package (``pip install 'blindspots-server[ray]'``) in the cluster's image.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence


class RayCluster:
    """``shard_gpus``: the GPUs each index shard (``start_workers``) asks Ray for, a fraction to
    share one (0.25: four shards on a GPU). Ray hides the GPUs from an actor that asks for none, so
    with 0 the shards' indexes are on the CPU; above 0 they must be on a GPU (faiss-gpu in the
    workers' image, else the shard fails saying so). A value no node can give is refused here,
    since such an actor would wait for ever."""

    def __init__(self, address: str, namespace: str = "blindspots", shard_gpus: float = 0.0, shard_threads: int = 0):
        try:
            import ray
        except ImportError:
            raise ValueError("--ray-address needs Ray: pip install 'blindspots-server[ray]'") from None
        if not shard_gpus >= 0:
            raise ValueError(f"ray_shard_gpus must be 0 or more, not {shard_gpus}")
        if shard_threads < 0:
            raise ValueError(f"ray_shard_threads must be 0 (by the nodes' CPUs) or more, not {shard_threads}")
        self._shard_threads = int(shard_threads)
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, namespace=namespace, log_to_driver=False, configure_logging=False)
        self.shard_gpus = float(shard_gpus)
        self.shard_use_gpu = self.shard_gpus > 0
        if self.shard_gpus:
            most = max((n.get("Resources", {}).get("GPU", 0.0) for n in self._alive_nodes()), default=0.0)
            if most < self.shard_gpus:
                raise ValueError(f"ray_shard_gpus is {self.shard_gpus:g} but no node of the Ray cluster has that many "
                                 f"GPUs (the most on one node: {most:g}); 0 keeps the index shards on the CPU")
        self.name = f"Ray cluster ({len(ray.nodes())} nodes" + (
            f", {self.shard_gpus:g} GPU per index shard)" if self.shard_gpus else ")")
        self._remote_fns: dict[Callable, Any] = {}

    def map_chunks(self, fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> list:
        ray = self._ray
        task = self._remote_fns.get(fn)
        if task is None:
            task = self._remote_fns[fn] = ray.remote(num_cpus=1)(fn)
        shared_ref = ray.put(shared)            # sent to the object store once, not once per task
        return self._get([task.remote(shared_ref, chunk) for chunk in chunks])

    def start_workers(self, cls: type, args_list: Sequence[tuple]) -> list:
        # Index shards hold memory, not CPUs (num_cpus=0), so that searches and tasks still get
        # scheduled while they live; SPREAD puts them on different nodes where it can.
        actor = self._ray.remote(num_cpus=0)(cls)
        if self.shard_gpus:
            self._await_gpus(len(args_list))
        options = {"num_gpus": self.shard_gpus} if self.shard_gpus else {}
        return [actor.options(scheduling_strategy="SPREAD", **options).remote(*args) for args in args_list]

    def shared_worker(self, cls: type, name: str, args: tuple, threads: int = 1) -> Any:
        # Detached: it outlives the server that started it (a restart, another replica finds it by
        # name in the namespace); get_if_exists: of servers that start it at once, one does.
        actor = self._ray.remote(num_cpus=0)(cls)
        return actor.options(name=name, lifetime="detached", get_if_exists=True,
                             max_concurrency=max(1, threads)).remote(*args)

    def _await_gpus(self, shards: int, wait_s: float = 5.0) -> None:
        """Refuse shards whose GPU shares the cluster has not got free: Ray would leave them waiting
        for ever (every pool's shards hold their shares while they live). The free count lags shards
        stopped a moment ago, so it is asked again for ``wait_s`` before giving up."""
        need = self.shard_gpus * shards
        deadline = time.monotonic() + wait_s
        while (free := self._ray.available_resources().get("GPU", 0.0)) + 1e-6 < need:
            if time.monotonic() > deadline:
                from .core.parallel import WorkersUnplaceable
                total = self._ray.cluster_resources().get("GPU", 0.0)
                raise WorkersUnplaceable(
                    f"{shards} index shards at ray_shard_gpus {self.shard_gpus:g} need {need:g} GPUs, and the Ray "
                    f"cluster has {free:g} of its {total:g} free (other pools' shards hold the rest): lower "
                    "ray_shard_gpus, add GPUs, or delete the pools no longer used")
            time.sleep(0.5)

    def shard_threads(self, shards: int) -> int:
        """faiss threads per index shard. Ray starts every actor with OMP_NUM_THREADS=1 (an actor
        that asks for no CPU, as shards do, gets one thread), so faiss in a shard would search on one
        core however many its node has: ``ray_shard_threads``, else the fewest CPUs a node declares
        over the shards SPREAD puts on each node."""
        if self._shard_threads:
            return self._shard_threads
        alive = self._alive_nodes()
        cpus = min((int(n.get("Resources", {}).get("CPU", 1)) for n in alive), default=1)
        return max(1, cpus // max(1, -(-shards // max(1, len(alive)))))

    def call_all(self, workers: Sequence[Any], method: str, *args) -> list:
        refs = [getattr(w, method).remote(*args) for w in workers]
        return self._get(refs)

    def _get(self, refs: list) -> list:
        """The results; a task's own exception is raised as itself (a DataLoss stays a DataLoss with its
        message), not wrapped in Ray's RayTaskError with the worker's traceback text; an actor that is
        gone is :class:`core.parallel.WorkerLost`."""
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as exc:
            if isinstance(getattr(exc, "cause", None), Exception):
                raise exc.cause from None
            raise
        except self._ray.exceptions.RayActorError as exc:
            from .core.parallel import WorkerLost
            raise WorkerLost(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def __reduce__(self):
        # Sent to a worker (a shared actor that starts workers of its own): there it attaches to the
        # Ray it runs in, instead of pickling the module.
        return (_attached, (self.shard_gpus, self._shard_threads))

    def stop_workers(self, workers: Sequence[Any]) -> None:
        for w in workers:
            self._ray.kill(w)

    def _alive_nodes(self) -> list[dict]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def nodes(self) -> int:
        return len(self._alive_nodes())

    def shutdown(self) -> None:
        self._ray.shutdown()


def _attached(shard_gpus: float = 0.0, shard_threads: int = 0) -> "RayCluster":
    """This process's Ray (initialised: a worker of the cluster) as a compute."""
    return RayCluster("auto", shard_gpus=shard_gpus, shard_threads=shard_threads)


def connect(address: str, shard_gpus: float = 0.0, shard_threads: int = 0):
    """The compute for a server: a Ray cluster when ``address`` is set, else this process."""
    if not address:
        if shard_gpus or shard_threads:
            raise ValueError("ray_shard_gpus and ray_shard_threads need ray_address (a server's own pool indexes "
                             "use a GPU whenever faiss-gpu sees one, and every core)")
        from .core.parallel import IN_PROCESS
        return IN_PROCESS
    return RayCluster(address, shard_gpus=shard_gpus, shard_threads=shard_threads)


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1, object_store_mb: int = 120,
                  log_dir: Optional[str] = None, timeout_s: float = 120, gpus: int = 0) -> Iterator[str]:
    """A throw-away Ray cluster on this machine (a head and ``nodes - 1`` more nodes), for tests and
    benches; yields its address and stops exactly the processes it started. ``gpus``: the GPUs the
    last node declares (Ray schedules by what is declared; on a machine without GPUs, actors that ask
    for one are placed but find none).

    Each node is ``ray start --block`` in a session of its own, so ending its process group ends
    that node's processes and nobody else's (no ``ray stop``, which ends every Ray on the machine).
    """
    import ray
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    if not os.path.exists(ray_bin):                    # Ray installed outside this interpreter's prefix
        ray_bin = shutil.which("ray") or ray_bin
    logs = log_dir or tempfile.mkdtemp(prefix="blindspots-ray-logs-")
    temp_dir = tempfile.mkdtemp(prefix="bsray-")       # short: Ray's socket paths must fit 107 bytes
    port, client_port = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> None:
        with open(os.path.join(logs, f"node-{len(procs)}.log"), "wb") as out:
            procs.append(subprocess.Popen(
                [ray_bin, "start", "--block", f"--num-cpus={cpus_per_node}", "--disable-usage-stats",
                 f"--object-store-memory={object_store_mb * 1024 * 1024}", "--node-ip-address=127.0.0.1", *args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}))

    try:
        start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
               f"--ray-client-server-port={client_port}"] + ([f"--num-gpus={gpus}"] if gpus and nodes == 1 else []))
        deadline = time.time() + timeout_s
        while True:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
                break
            except Exception:
                if time.time() > deadline or procs[0].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start; see {logs}") from None
                time.sleep(2)
        for i in range(nodes - 1):
            start([f"--address={address}"] + ([f"--num-gpus={gpus}"] if gpus and i == nodes - 2 else []))
        while sum(1 for n in ray.nodes() if n.get("Alive")) < nodes:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"Ray nodes did not join; see {logs}")
            time.sleep(1)
        ray.shutdown()
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for proc in reversed(procs):
            # A worker node ends within a second of SIGTERM; the head's `ray start --block` waits out
            # any grace it is given (30 s measured), so past a few seconds its group is killed.
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=5 if sig == signal.SIGTERM else 30)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(temp_dir, ignore_errors=True)
        if log_dir is None:
            shutil.rmtree(logs, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
