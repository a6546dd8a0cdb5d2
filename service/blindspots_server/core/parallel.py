"""Where heavy steps run: in this process, or on a cluster with the same methods.

Core code that can split its work takes a ``compute`` object with three
operations and never knows which one it got:

- ``map_chunks(fn, shared, chunks)``: ``[fn(shared, c) for c in chunks]``, as
  tasks (``fn`` is a module-level function; ``shared`` is sent once);
- ``start_workers(cls, args_list)``: one stateful worker per argument tuple
  (e.g. an index shard held in memory between searches);
- ``call_all(workers, method, *args)``: call a method on every worker, answers
  in worker order; ``stop_workers(workers)`` releases them;
- ``shared_worker(cls, name, args, threads)``: the worker called ``name``,
  started with ``args`` if there is none yet: on a cluster, every process that
  asks by that name gets the same one, it serves ``threads`` calls at a time,
  and it lives on when its starter ends (e.g. the pools' index shards that
  several servers use and a restart keeps). Here it is a new object: this
  process is the only one to ask, and the caller keeps it.

A call to a worker that is gone (stopped by another process) raises :class:`WorkerLost`.
``shard_use_gpu`` is the ``use_gpu`` of the pool index shards it starts: "auto" here (a GPU
faiss sees), on Ray whether the shards asked the cluster for GPUs (``shard_gpus`` each, 0
here); ``shard_threads(shards)`` the faiss threads each of ``shards`` shards takes (0 here:
faiss's own default, this process's cores).

:class:`InProcess` runs them here, one after another (the default);
``blindspots_server.ray_cluster.RayCluster`` runs them as Ray tasks and actors.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence


class WorkerLost(RuntimeError):
    """A worker died or was stopped before it answered."""


class WorkersUnplaceable(RuntimeError):
    """The cluster cannot give the workers what they ask for (GPUs other workers hold): started,
    they would wait for ever."""


class InProcess:
    name = "in-process"
    shard_use_gpu = "auto"
    shard_gpus = 0.0

    def map_chunks(self, fn: Callable[[Any, Any], Any], shared: Any, chunks: Sequence[Any]) -> list:
        return [fn(shared, c) for c in chunks]

    def start_workers(self, cls: type, args_list: Sequence[tuple]) -> list:
        return [cls(*args) for args in args_list]

    def call_all(self, workers: Sequence[Any], method: str, *args) -> list:
        return [getattr(w, method)(*args) for w in workers]

    def stop_workers(self, workers: Sequence[Any]) -> None:
        pass

    def shared_worker(self, cls: type, name: str, args: tuple, threads: int = 1) -> Any:
        return cls(*args)

    def shard_threads(self, shards: int) -> int:
        return 0


IN_PROCESS = InProcess()


def row_chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering 0..n, sizes differing by at most one."""
    parts = max(1, min(parts, n)) if n else 1
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
