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

from typing import Any, Callable, Sequence


class RayCluster:
    def __init__(self, address: str, namespace: str = "blindspots"):
        try:
            import ray
        except ImportError:
            raise ValueError("--ray-address needs Ray: pip install 'blindspots-server[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, namespace=namespace, log_to_driver=False, configure_logging=False)
        self.name = f"Ray cluster ({len(ray.nodes())} nodes)"
        self._remote_fns: dict[Callable, Any] = {}

    def map_chunks(self, fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> list:
        ray = self._ray
        task = self._remote_fns.get(fn)
        if task is None:
            task = self._remote_fns[fn] = ray.remote(num_cpus=1)(fn)
        shared_ref = ray.put(shared)            # sent to the object store once, not once per task
        return ray.get([task.remote(shared_ref, chunk) for chunk in chunks])

    def start_workers(self, cls: type, args_list: Sequence[tuple]) -> list:
        # Index shards hold memory, not CPUs (num_cpus=0), so that searches and tasks still get
        # scheduled while they live; SPREAD puts them on different nodes where it can.
        actor = self._ray.remote(num_cpus=0)(cls)
        return [actor.options(scheduling_strategy="SPREAD").remote(*args) for args in args_list]

    def call_all(self, workers: Sequence[Any], method: str, *args) -> list:
        refs = [getattr(w, method).remote(*args) for w in workers]
        return self._ray.get(refs)

    def stop_workers(self, workers: Sequence[Any]) -> None:
        for w in workers:
            self._ray.kill(w)

    def nodes(self) -> int:
        return sum(1 for n in self._ray.nodes() if n.get("Alive"))

    def shutdown(self) -> None:
        self._ray.shutdown()


def connect(address: str):
    """The compute for a server: a Ray cluster when ``address`` is set, else this process."""
    if not address:
        from .core.parallel import IN_PROCESS
        return IN_PROCESS
    return RayCluster(address)
