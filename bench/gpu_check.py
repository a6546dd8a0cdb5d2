"""The GPU paths, on a machine with a GPU, faiss built with GPU support, and torch with CUDA:
the pool index on the GPU (``PoolIndex(use_gpu=True)``) against the same index on the CPU, and
the SDK's copy of GPU tensors to host memory. Not in `make bench` or the tests (CI has no GPU).

    python bench/gpu_check.py [--rows 200000] [--out gpu_check.json]

Each check prints one line, ``ok`` or ``FAIL`` with its numbers; the exit status is 1 if any failed.
Pool index, for each kind (flat, ivf, ivfsq8, ivfpq; hnsw stays on the CPU by design), over
clustered unit rows: built on the GPU, it is on the GPU; recall@10 against exact search within
0.02 of the CPU index's; a search past faiss-gpu's k limit (2048) answers like the CPU; ``vectors``
gives the rows (exactly for flat and ivf, within the codes' error for sq8 and pq); ``to_bytes`` /
``from_bytes`` gives the same answers on the GPU; rows added later are found as often as on the
CPU; eight threads
searching at once get the answers one thread gets. An IVF-PQ that faiss-gpu refuses stays on the CPU.
Two in-process shards on the GPU. SDK: a CUDA
tensor that needs grad, a bfloat16 one and CUDA labels go through ``as_matrix`` /
``as_probabilities``; ``capture`` runs a CUDA model under bfloat16 autocast. With ``--server``: a real
server whose pool index is on the GPU answers eight targeted Suggests at once as it answers one.
With ``--ray``: index shards on a local Ray cluster asking for half a GPU each (``ray_shard_gpus``),
and a server on it.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "service"), str(ROOT / "clients" / "python")]

RESULTS: list[dict] = []


def check(name: str, ok: bool, **numbers) -> bool:
    RESULTS.append({"check": name, "ok": bool(ok), **numbers})
    shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {shown}" if shown else ""), flush=True)
    return ok


def at_once(call, threads: int = 8, times: int = 1) -> tuple[list, list[str]]:
    """``call()`` from ``threads`` threads started together, ``times`` each: the answers, and the
    errors as text."""
    answers, errors = [], []

    def run() -> None:
        try:
            for _ in range(times):
                answers.append(call())
        except Exception as exc:             # noqa: BLE001 - reported by the caller's check
            errors.append(f"{type(exc).__name__}: {exc}")
    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return answers, errors


def clustered_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(8, rows // 1000), dim))
    x = centres[rng.integers(0, len(centres), rows)] + 0.35 * rng.normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth)]))


def pool_index_checks(rows: int, dim: int) -> None:
    from blindspots_server.core.pool_index import PoolIndex, gpu_available
    from blindspots_server.core.sharded_index import ShardedPoolIndex

    import faiss
    if not check("faiss sees a GPU", gpu_available(), faiss=faiss.__version__, gpus=faiss.get_num_gpus()):
        return
    x = clustered_rows(rows, dim, 0)
    queries = clustered_rows(500, dim, 1)
    exact = PoolIndex(dim, kind="flat", use_gpu=False).build(x)
    _, truth = exact.search(queries, 10)
    probe = np.random.default_rng(2).choice(rows, 64, replace=False)
    for kind in ("flat", "ivf", "ivfsq8", "ivfpq"):
        t0 = time.perf_counter()
        cpu = PoolIndex(dim, kind=kind, use_gpu=False).build(x)
        t1 = time.perf_counter()
        try:
            gpu = PoolIndex(dim, kind=kind, use_gpu=True).build(x)
        except Exception as exc:            # a kind faiss-gpu refuses: say which, and go on
            check(f"{kind}: builds on the GPU", False, error=f"{type(exc).__name__}: {exc}"[:300])
            continue
        t2 = time.perf_counter()
        check(f"{kind}: built on the GPU", gpu.on_gpu_ and gpu.ntotal == rows, description=gpu.description,
              cpu_build_s=t1 - t0, gpu_build_s=t2 - t1)
        t0 = time.perf_counter()
        _, found_cpu = cpu.search(queries, 10)
        t1 = time.perf_counter()
        _, found_gpu = gpu.search(queries, 10)
        t2 = time.perf_counter()
        r_cpu, r_gpu = recall(found_cpu, truth), recall(found_gpu, truth)
        check(f"{kind}: recall@10 on the GPU within 0.02 of the CPU's", r_gpu >= r_cpu - 0.02,
              cpu=r_cpu, gpu=r_gpu, cpu_search_s=t1 - t0, gpu_search_s=t2 - t1)
        k = 3000
        _, big_gpu = gpu.search(queries[:10], k)
        _, big_truth = exact.search(queries[:10], k)
        _, big_cpu = cpu.search(queries[:10], k)
        check(f"{kind}: k={k} (past faiss-gpu's 2048) like the CPU", big_gpu.shape == (10, k)
              and recall(big_gpu, big_truth) >= recall(big_cpu, big_truth) - 0.02,
              cpu=recall(big_cpu, big_truth), gpu=recall(big_gpu, big_truth))
        error = float(np.abs(gpu.vectors(probe) - x[probe]).max())
        check(f"{kind}: vectors() are the rows" + ("" if gpu.holds_rows else " within the codes' error"),
              error < (1e-6 if gpu.holds_rows else 0.25), max_abs_error=error)
        check(f"{kind}: nbytes as on the CPU", gpu.nbytes == cpu.nbytes, gpu=gpu.nbytes, cpu=cpu.nbytes)
        back = PoolIndex.from_bytes(bytes(gpu.to_bytes()))
        _, found_back = back.search(queries, 10)
        check(f"{kind}: to_bytes / from_bytes answers alike, on the GPU", back.on_gpu_
              and np.array_equal(found_back, found_gpu), same_rows=float(np.mean(found_back == found_gpu)))
        extra = clustered_rows(2000, dim, 3)
        found_self = {}
        for side, index in (("cpu", cpu), ("gpu", gpu)):
            index.add(extra)
            found_self[side] = float(np.mean(index.search(extra[:100], 1)[1][:, 0] == np.arange(rows, rows + 100)))
        check(f"{kind}: rows added later are found as on the CPU", gpu.ntotal == rows + 2000
              and found_self["gpu"] >= found_self["cpu"] - 0.05, **found_self)
        new = np.arange(rows, rows + 50)
        added = {side: float(np.abs(index.vectors(new) - extra[:50]).max()) for side, index in (("cpu", cpu), ("gpu", gpu))}
        check(f"{kind}: vectors() of rows added later, as on the CPU (not an older copy of the index)",
              added["gpu"] <= added["cpu"] + (1e-6 if gpu.holds_rows else 0.05), **added)
        serial = gpu.search(queries, 10)[1]
        answers, errors = at_once(lambda: gpu.search(queries, 10)[1], times=20)
        check(f"{kind}: 8 threads searching at once get one thread's answers",
              not errors and len(answers) == 160 and all(np.array_equal(a, serial) for a in answers),
              differing=sum(not np.array_equal(a, serial) for a in answers), errors=len(errors),
              first_error=errors[0][:200] if errors else "")
    refused = PoolIndex(dim, kind="ivfpq", pq_m=dim, use_gpu="auto").build(x[:20000])
    check("ivfpq with more sub-quantizers than faiss-gpu takes: on the CPU under auto, saying why",
          not refused.on_gpu_ and bool(refused.gpu_refused_) and refused.search(queries[:5], 5)[1].shape == (5, 5),
          why=refused.gpu_refused_[-160:])
    hnsw = PoolIndex(dim, kind="hnsw", use_gpu=True).build(x[:20000])
    check("hnsw: stays on the CPU (faiss has no GPU HNSW)", not hnsw.on_gpu_ and hnsw.ntotal == 20000)
    sharded = ShardedPoolIndex(dim, shards=2, kind="ivf").build(x)
    _, found = sharded.search(queries, 10)
    on_gpu = [w.index.on_gpu_ for w in sharded.workers]
    single = recall(PoolIndex(dim, kind="ivf", use_gpu=False).build(x).search(queries, 10)[1], truth)
    check("two in-process shards: on the GPU, recall@10 within 0.05 of one CPU index's",
          all(on_gpu) and recall(found, truth) >= single - 0.05, recall=recall(found, truth), one_cpu_index=single,
          shards_on_gpu=sum(on_gpu))


def server_checks(rows: int, ray_address: str = "", shard_gpus: float = 0.0, label: str = "server") -> None:
    """A real server (embedded store, loopback) whose pool index is on the GPU: eight targeted
    Suggests at once all answer with the picks one Suggest alone gives, and the server stays up.
    With ``ray_address``: the index is two shards on that cluster, each asking ``shard_gpus``."""
    import tempfile

    from blindspots import Client
    from blindspots_server.config import ServerConfig
    from blindspots_server.server.app import BlindspotsServer

    rng = np.random.default_rng(5)
    dim, n_test = 64, 6000
    with tempfile.TemporaryDirectory() as tmp:
        on_ray = dict(ray_address=ray_address, ray_shard_gpus=shard_gpus, index_shards=2) if ray_address else {}
        server = BlindspotsServer(ServerConfig(data_dir=f"{tmp}/data", host="127.0.0.1", port=0,
                                               job_retention_days=0, **on_ray)).start()
        client = Client(f"127.0.0.1:{server.port}", timeout=600, retries=0)
        try:
            pool = client.create_pool("pool", embedding_dim=dim, num_classes=2)
            pool.add([f"p{i}" for i in range(rows)], clustered_rows(rows, dim, 7),
                     probabilities=rng.dirichlet([1, 1], rows), progress=False)
            x = clustered_rows(n_test, dim, 8)
            labels = rng.integers(0, 2, n_test)
            hard = x[:, 0] > np.quantile(x[:, 0], 0.9)          # a tenth of the test set, mostly wrong
            wrong = np.where(hard, rng.random(n_test) < 0.7, rng.random(n_test) < 0.05)
            predicted = np.where(wrong, 1 - labels, labels)
            p1 = np.where(predicted == 1, 0.9, 0.1)
            run = client.create_run("gpu", class_names=["a", "b"], embedding_dim=dim)
            run.log_predictions([f"t{i}" for i in range(n_test)], x, labels=labels,
                                probabilities=np.stack([1 - p1, p1], axis=1), progress=False)
            run.diagnose(progress=False)
            alone = client.suggest(run.id, pool.id, 300, allow_repeats=True, progress=False)
            index = server.servicer.indexes.loaded_index(pool.id)
            answers, errors = at_once(lambda: client.suggest(run.id, pool.id, 300, allow_repeats=True, progress=False))
            same = sum(a["sample_id"].tolist() == alone["sample_id"].tolist() for a in answers)
            devices = index.devices() if hasattr(index, "devices") else ["gpu" if index.on_gpu_ else "cpu"]
            check(f"{label}: the pool's index on the GPU; 8 targeted Suggests at once answer as one alone",
                  set(devices) == {"gpu"} and not errors and same == 8, devices=",".join(devices),
                  index=repr(index), picks=len(alone), same=same, errors=len(errors),
                  first_error=errors[0][:200] if errors else "")
            info = client.server_info()
            check(f"{label}: still serving after them, and says where its indexes are",
                  info.version != "" and (info.ray_shard_gpus == shard_gpus if ray_address else info.index_device == "gpu"),
                  index_device=info.index_device, ray_shard_gpus=info.ray_shard_gpus)
        finally:
            client.close()
            server.stop()


def ray_checks(rows: int, dim: int) -> None:
    """Index shards on a local Ray cluster (one node, this machine's GPU) asking for half a GPU each
    (``ray_shard_gpus``): on the GPU, answering as one CPU index does; then a server on that cluster."""
    from blindspots_server.core.pool_index import PoolIndex
    from blindspots_server.core.sharded_index import ShardedPoolIndex
    from blindspots_server.ray_cluster import RayCluster, local_cluster

    x = clustered_rows(rows, dim, 0)
    queries = clustered_rows(500, dim, 1)
    truth = PoolIndex(dim, kind="flat", use_gpu=False).build(x).search(queries, 10)[1]
    single = recall(PoolIndex(dim, kind="ivf", use_gpu=False).build(x).search(queries, 10)[1], truth)
    with local_cluster(nodes=1, cpus_per_node=8, object_store_mb=2000, gpus=1) as address:
        cluster = RayCluster(address, shard_gpus=0.5)
        sharded = ShardedPoolIndex(dim, shards=2, kind="ivf", compute=cluster).build(x)
        try:
            _, found = sharded.search(queries, 10)
            check("ray: two index shards at ray_shard_gpus 0.5, on the GPU, recall@10 within 0.05 of one CPU "
                  "index's", sharded.devices() == ["gpu", "gpu"] and recall(found, truth) >= single - 0.05,
                  devices=",".join(sharded.devices()), recall=recall(found, truth), one_cpu_index=single)
            probe = np.random.default_rng(2).choice(rows, 64, replace=False)
            error = float(np.abs(sharded.vectors(probe) - x[probe]).max())
            check("ray: vectors() from the GPU shards are the rows", error < 1e-6, max_abs_error=error)
            serial = sharded.search(queries, 10)[1]
            answers, errors = at_once(lambda: sharded.search(queries, 10)[1], times=5)
            check("ray: 8 threads searching the GPU shards at once get one thread's answers",
                  not errors and all(np.array_equal(a, serial) for a in answers), errors=len(errors),
                  first_error=errors[0][:200] if errors else "")
        finally:
            sharded.close()
        server_checks(rows, ray_address=address, shard_gpus=0.5, label="ray server")


def ray_speed(rows: int, dim: int, repeats: int = 2) -> None:
    """Timings, not checks: two index shards of the default kind at ``rows`` on a local Ray cluster
    (one node: this machine's cores and GPU), with ``ray_shard_gpus`` 0 (CPU) and 0.5 (GPU); build,
    10,000 queries with k=10 and 1,000 with k=1000, medians of ``repeats``; recall@10 against exact."""
    from blindspots_server.core.pool_index import PoolIndex
    from blindspots_server.core.sharded_index import ShardedPoolIndex
    from blindspots_server.ray_cluster import RayCluster, local_cluster

    x = clustered_rows(rows, dim, 10)
    queries = clustered_rows(10_000, dim, 11)
    truth = PoolIndex(dim, kind="flat", use_gpu="auto").build(x).search(queries, 10)[1]
    t0 = time.perf_counter()
    one = PoolIndex(dim, use_gpu=False).build(x)
    t1 = time.perf_counter()
    _, found = one.search(queries, 10)
    t2 = time.perf_counter()
    check(f"timing cpu, one index in this process ({one.description}), for reference", True, build_s=t1 - t0,
          search_10k_queries_k10_s=t2 - t1, recall_at_10=recall(found, truth))
    del one
    with local_cluster(nodes=1, cpus_per_node=16, object_store_mb=8000, gpus=1) as address:
        for side, gpus in (("cpu", 0.0), ("gpu", 0.5)):
            cluster = RayCluster(address, shard_gpus=gpus)
            builds, searches, wide = [], [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                index = ShardedPoolIndex(dim, shards=2, compute=cluster).build(x)
                t1 = time.perf_counter()
                _, found = index.search(queries, 10)
                t2 = time.perf_counter()
                index.search(queries[:1000], 1000)
                t3 = time.perf_counter()
                devices, threads = index.devices(), index.threads()
                index.close()
                builds.append(t1 - t0)
                searches.append(t2 - t1)
                wide.append(t3 - t2)
            check(f"ray timing {side}: 2 shards ({index.description}) over {rows} x {dim}",
                  set(devices) == {side}, devices=",".join(devices), threads=",".join(map(str, threads)),
                  build_s=float(np.median(builds)),
                  search_10k_queries_k10_s=float(np.median(searches)), search_1k_queries_k1000_s=float(np.median(wide)),
                  recall_at_10=recall(found, truth))


def speed(rows: int, dim: int, repeats: int = 3) -> None:
    """Timings, not checks: build and search of the default kind at ``rows`` (1M x 128-d: IVF-Flat)
    on the CPU (all cores) and the GPU, medians of ``repeats``; recall@10 against exact search."""
    from blindspots_server.core.pool_index import PoolIndex

    x = clustered_rows(rows, dim, 10)
    queries = clustered_rows(10_000, dim, 11)
    truth = PoolIndex(dim, kind="flat", use_gpu=True).build(x).search(queries, 10)[1]
    for side, use_gpu in (("cpu", False), ("gpu", True)):
        builds, searches, wide, first_vectors, again_vectors = [], [], [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            index = PoolIndex(dim, use_gpu=use_gpu).build(x)
            t1 = time.perf_counter()
            _, found = index.search(queries, 10)
            t2 = time.perf_counter()
            index.search(queries[:1000], 1000)
            t3 = time.perf_counter()
            picks = np.random.default_rng(12).choice(rows, 300, replace=False)
            index.vectors(picks)
            t4 = time.perf_counter()
            index.vectors(picks[::-1])
            t5 = time.perf_counter()
            builds.append(t1 - t0)
            searches.append(t2 - t1)
            wide.append(t3 - t2)
            first_vectors.append(t4 - t3)
            again_vectors.append(t5 - t4)
        check(f"timing {side}: {index.description} over {rows} x {dim}", True, build_s=float(np.median(builds)),
              search_10k_queries_k10_s=float(np.median(searches)), search_1k_queries_k1000_s=float(np.median(wide)),
              vectors_300_first_s=float(np.median(first_vectors)), vectors_300_again_s=float(np.median(again_vectors)),
              recall_at_10=recall(found, truth))


def sdk_checks() -> None:
    import torch
    from blindspots._columns import as_matrix, as_probabilities
    from blindspots.client import _class_indices
    from blindspots.torch_capture import capture

    if not check("torch sees a GPU", torch.cuda.is_available(), torch=torch.__version__):
        return
    emb = (torch.randn(256, 32, device="cuda") * 2).requires_grad_()
    out = as_matrix(emb * 1.0, "embeddings", 256)
    check("a CUDA tensor that needs grad goes to host memory", out.dtype == np.float32
          and np.array_equal(out, (emb * 1.0).detach().cpu().numpy()))
    logits = torch.randn(256, 5, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        probs = torch.softmax(torch.nn.functional.linear(logits, torch.eye(5, device="cuda")), dim=1)
    probs = probs.to(torch.bfloat16)
    got = as_probabilities(probs, 256)
    check("bfloat16 CUDA probabilities: float32 rows summing to 1", got.dtype == np.float32
          and float(np.abs(got.sum(axis=1) - 1).max()) < 1e-5,
          off_before=float((probs.float().sum(dim=1) - 1).abs().max()))
    labels = torch.randint(0, 5, (256,), device="cuda")
    check("CUDA labels become class indices", np.array_equal(_class_indices(labels), labels.cpu().numpy()))
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).cuda()
    batches = [(torch.randn(64, 16), torch.randint(0, 4, (64,))) for _ in range(4)]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        captured = capture(model, batches)
    check("capture of a CUDA model under bfloat16 autocast", len(captured) == 256
          and captured.embeddings.shape == (256, 32) and captured.embeddings.dtype == np.float32
          and float(np.abs(captured.probabilities.sum(axis=1) - 1).max()) < 1e-3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--out", default="")
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--skip-sdk", action="store_true")
    ap.add_argument("--server", action="store_true", help="also a real server (needs the server's dependencies)")
    ap.add_argument("--ray", action="store_true", help="also index shards and a server on a local Ray cluster")
    ap.add_argument("--ray-speed-rows", type=int, default=0,
                    help="also time two Ray index shards at this many rows, on the CPU and on the GPU")
    ap.add_argument("--speed-rows", type=int, default=0, help="also time build and search at this many rows, CPU vs GPU")
    args = ap.parse_args()
    for part, skip in ((lambda: pool_index_checks(args.rows, args.dim), args.skip_index), (sdk_checks, args.skip_sdk),
                       (lambda: server_checks(args.rows), not args.server),
                       (lambda: ray_checks(args.rows, args.dim), not args.ray),
                       (lambda: speed(args.speed_rows, args.dim), not args.speed_rows),
                       (lambda: ray_speed(args.ray_speed_rows, args.dim), not args.ray_speed_rows)):
        if skip:
            continue
        try:
            part()
        except Exception as exc:             # noqa: BLE001 - a part that cannot run is a failed check
            check(f"{getattr(part, '__name__', 'pool index')} ran", False, error=f"{type(exc).__name__}: {exc}"[:400])
    if args.out:
        Path(args.out).write_text(json.dumps(RESULTS, indent=1))
    failed = [r["check"] for r in RESULTS if not r["ok"]]
    print(f"{len(RESULTS) - len(failed)} of {len(RESULTS)} checks ok" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
