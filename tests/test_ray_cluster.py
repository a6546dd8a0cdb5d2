"""Heavy steps on a real local Ray cluster (a head and a second node, started here) give the
same answers as in one process: the sharded pool index, the diagnosis's kNN assignment, and a
server started with --ray-address. Marked `ray`; runs in the default suite."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from blindspots import Client, NotFoundError
from blindspots_server.core.diagnosis import Diagnoser
from blindspots_server.core.failure_clusters import nearest
from blindspots_server.core.parallel import IN_PROCESS, WorkersUnplaceable
from blindspots_server.core.pool_index import GpuUnavailable, PoolIndex
from blindspots_server.core.sharded_index import ShardedPoolIndex

from conftest import start_server

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("BLINDSPOTS_TEST_NO_RAY") == "1":
            pytest.skip("ray is not installed (BLINDSPOTS_TEST_NO_RAY=1)")
        pytest.fail("ray is not installed: pip install 'blindspots-server[ray]' (the dev extra has it), "
                    "or set BLINDSPOTS_TEST_NO_RAY=1 to skip", pytrace=False)
    from blindspots_server.ray_cluster import RayCluster, local_cluster
    # The second node declares one GPU, which this machine lacks: Ray places actors that ask for it
    # there (test_index_shards_ask_ray_for_ray_shard_gpus); the other tests ask for none.
    with local_cluster(nodes=2, cpus_per_node=1, object_store_mb=120, gpus=1) as address:
        cluster = RayCluster(address)
        assert cluster.nodes() == 2
        try:
            yield address, cluster
        finally:
            cluster.shutdown()


def test_sharded_index_on_ray_equals_one_flat_index_and_the_in_process_shards(ray_cluster):
    _, cluster = ray_cluster
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(40, 32))
    pool = (centers[rng.integers(0, 40, 60_000)] + 0.3 * rng.normal(size=(60_000, 32))).astype(np.float32)
    queries = rng.normal(size=(200, 32)).astype(np.float32)
    exact = PoolIndex(32, kind="flat").build(pool)
    on_ray = ShardedPoolIndex(32, shards=3, kind="flat", compute=cluster).build(pool)
    d_one, i_one = exact.search(queries, 25)
    d_ray, i_ray = on_ray.search(queries, 25)
    np.testing.assert_array_equal(i_ray, i_one)
    np.testing.assert_allclose(d_ray, d_one, atol=1e-6)
    # Rows read back from the actors (targeted suggestion without the pool in the driver).
    rows = np.array([59_999, 0, 20_000, 19_999, 7])
    np.testing.assert_allclose(on_ray.vectors(rows), exact.vectors(rows), atol=1e-6)
    # Approximate (IVF) shards: the cluster answers what the same shards answer in one process.
    ivf_ray = ShardedPoolIndex(32, shards=2, kind="ivf", compute=cluster).build(pool)
    ivf_here = ShardedPoolIndex(32, shards=2, kind="ivf", compute=IN_PROCESS).build(pool)
    np.testing.assert_array_equal(ivf_ray.search(queries, 10)[1], ivf_here.search(queries, 10)[1])
    ivf_ray.add(pool[:500])
    assert ivf_ray.ntotal == 60_500 and ivf_ray.search(pool[:1], 1)[1][0, 0] in (0, 60_000)


def test_shards_on_ray_read_their_rows_from_the_pool_row_files(ray_cluster, tmp_path):
    import pyarrow.parquet as pq

    from blindspots_server.storage.rows import ParquetEmbeddings, build_table
    _, cluster = ray_cluster
    rng = np.random.default_rng(7)
    pool = rng.normal(size=(30_000, 24)).astype(np.float32)
    paths = []
    for i, (a, b) in enumerate([(0, 12_000), (12_000, 30_000)]):
        paths.append(str(tmp_path / f"batch-{i}.parquet"))
        pq.write_table(build_table([str(j) for j in range(a, b)], pool[a:b], None, None, None, {}), paths[-1],
                       row_group_size=5000)
    queries = rng.normal(size=(100, 24)).astype(np.float32)
    on_ray = ShardedPoolIndex(24, shards=2, kind="flat", compute=cluster).build_from(ParquetEmbeddings(paths))
    d_one, i_one = PoolIndex(24, kind="flat").build(pool).search(queries, 10)
    np.testing.assert_array_equal(on_ray.search(queries, 10)[1], i_one)
    d_exact, i_exact = on_ray.exact_search(queries, 10)
    np.testing.assert_array_equal(i_exact, i_one)
    np.testing.assert_allclose(d_exact, d_one, atol=1e-5)
    on_ray.close()


def test_index_shards_ask_ray_for_ray_shard_gpus_and_their_indexes_must_then_be_on_a_gpu(ray_cluster, tmp_path,
                                                                                      caplog):
    """ray_shard_gpus: each index shard asks Ray for that share of a GPU (two at 0.5 take the one GPU
    the second node declares, and give it back when stopped); its index must then be on the GPU, so
    with this machine's faiss, which has no GPU support, a shard fails saying so, and a server's
    index-build job fails with that message while the server goes on. Without it the shards are on
    the CPU and leave the GPU alone. A share no node can give, or the setting without a Ray
    cluster, is refused at start, naming it; shards whose shares other shards hold are refused
    (RESOURCE_EXHAUSTED through a server), not left waiting for ever."""
    import ray

    from blindspots_server.config import ServerConfig
    from blindspots_server.ray_cluster import RayCluster
    from blindspots_server.server.app import BlindspotsServer

    address, cluster = ray_cluster
    rows = np.random.default_rng(6).normal(size=(2000, 16)).astype(np.float32)

    def free_gpus(want: float) -> float:
        deadline = time.monotonic() + 60
        while (free := ray.available_resources().get("GPU", 0.0)) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        return free

    with pytest.raises(ValueError, match="ray_shard_gpus is 2 but no node of the Ray cluster has that many GPUs"):
        RayCluster(address, shard_gpus=2)
    with pytest.raises(ValueError, match="ray_shard_gpus needs ray_address"):
        BlindspotsServer(ServerConfig(data_dir=str(tmp_path / "no_ray"), port=0, ray_shard_gpus=0.5))
    on_gpus = RayCluster(address, shard_gpus=0.5)
    assert on_gpus.shard_use_gpu is True and "0.5 GPU per index shard" in on_gpus.name
    index = ShardedPoolIndex(16, shards=2, kind="flat", compute=on_gpus)
    with pytest.raises(GpuUnavailable, match="must be on a GPU .* use_gpu=True but faiss has no GPU support"):
        index.build(rows)
    assert free_gpus(0.0) == 0.0                # the two shards hold the node's GPU between them
    # While they hold it, two more (another pool's) cannot be placed: refused, not left waiting.
    with pytest.raises(WorkersUnplaceable, match="need 1 GPUs, and the Ray cluster has 0 of its 1 free"):
        ShardedPoolIndex(16, shards=2, kind="flat", compute=on_gpus).build(rows)

    def built(client: Client, name: str) -> dict:
        """A pool of ``rows``, and how its index build ended."""
        pool = client.create_pool(name, embedding_dim=16)
        pool.add([f"p{i}" for i in range(len(rows))], rows, progress=False)
        deadline = time.monotonic() + 120
        while (job := client.list_jobs(kind="index_build", pool=pool.id).iloc[0])["state"] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline, "the index build did not end"
            time.sleep(0.2)
        return {"state": job["state"], "error": job["error"]}

    server = start_server(tmp_path / "gpu", ray_address=address, ray_shard_gpus=0.5, index_shards=2)
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=120)
    try:
        assert client.server_info().ray_shard_gpus == 0.5
        held = built(client, "while the GPU is held")
        assert held["state"] == "FAILED" and held["error"].startswith("RESOURCE_EXHAUSTED: 2 index shards at "
                                                                      "ray_shard_gpus 0.5 need 1 GPUs"), held
        index.close()
        assert free_gpus(1.0) == 1.0
        job = built(client, "with the GPU free")
        assert job["state"] == "FAILED"                   # built once: not again from rows the server reads
        assert not [r for r in caplog.records if "could not read the pool's row files" in r.getMessage()]
        assert job["error"].startswith("FAILED_PRECONDITION: an index shard that must be on a GPU"), job
        assert "set ray_shard_gpus to 0" in job["error"]
        assert client.server_info().ray_shard_gpus == 0.5           # still serving
    finally:
        client.close()
        server.stop()
    assert free_gpus(1.0) == 1.0
    plain = ShardedPoolIndex(16, shards=2, kind="flat", compute=cluster).build(rows)
    assert cluster.shard_use_gpu is False and plain.devices() == ["cpu", "cpu"]
    assert ray.available_resources().get("GPU", 0.0) == 1.0
    plain.close()
    with pytest.raises(ValueError, match="ray_shard_gpus and ray_shard_threads need ray_address"):
        from blindspots_server.ray_cluster import connect
        connect("", shard_threads=2)
    assert free_gpus(1.0) == 1.0
    # The cluster's shared index actor that a GPU server started starts GPU shards: a server without
    # ray_shard_gpus has its own, and builds its shards on the CPU.
    from blindspots_server.server.pool_indexes import SHARED_NAME
    server = start_server(tmp_path / "cpu", ray_address=address, index_shards=2)
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=120)
    try:
        pool = client.create_pool("pool", embedding_dim=16)
        pool.add([f"p{i}" for i in range(len(rows))], rows, progress=False)
        job = client.list_jobs(kind="index_build")["id"].iloc[0]
        client.wait_job(job, progress=False)                       # raises unless it succeeded
        assert server.servicer.indexes.loaded_index(pool.id).devices() == ["cpu", "cpu"]
    finally:
        client.close()
        server.stop()
    ray.kill(ray.get_actor(f"{SHARED_NAME}-gpu0.5"))


def test_index_shards_on_ray_search_with_their_node_s_cpus_not_the_one_thread_ray_gives_an_actor(ray_cluster):
    """Ray starts every actor with OMP_NUM_THREADS=1, so a shard's faiss searched on one core whatever
    its node had (on an H200 machine's 16 cores, Ray CPU shards searched 12x slower than one in-process
    index). A shard now takes its node's declared CPUs over the shards each node holds (1 on this
    cluster's 1-CPU nodes), or ray_shard_threads; shards in the server's process keep faiss's own count."""
    import faiss

    from blindspots_server.ray_cluster import RayCluster

    address, cluster = ray_cluster
    rows = np.random.default_rng(7).normal(size=(3000, 8)).astype(np.float32)
    assert [cluster.shard_threads(n) for n in (1, 2, 4)] == [1, 1, 1]
    declared = RayCluster(address, shard_threads=2)
    assert declared.shard_threads(4) == 2
    for compute, want in ((cluster, [1, 1]), (declared, [2, 2])):
        index = ShardedPoolIndex(8, shards=2, kind="flat", compute=compute).build(rows)
        try:
            assert index.threads() == want
        finally:
            index.close()
    before = faiss.omp_get_max_threads()
    here = ShardedPoolIndex(8, shards=2, kind="flat", compute=IN_PROCESS).build(rows)
    assert here.threads() == [before, before] and faiss.omp_get_max_threads() == before
    with pytest.raises(ValueError, match="ray_shard_threads must be 0"):
        RayCluster(address, shard_threads=-1)


def test_knn_assignment_as_ray_tasks_equals_in_process(ray_cluster):
    _, cluster = ray_cluster
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(8000, 16)).astype(np.float32)
    queries = rng.normal(size=(120_000, 16)).astype(np.float32)        # three search tasks
    d_ray, i_ray = nearest(ref, queries, 16, approximate=True, compute=cluster)
    d_here, i_here = nearest(ref, queries, 16, approximate=True, compute=IN_PROCESS)
    d_plain, i_plain = nearest(ref, queries, 16, approximate=True)
    np.testing.assert_array_equal(i_ray, i_here)
    np.testing.assert_array_equal(d_ray, d_here)
    assert (i_plain == i_here).mean() > 0.999       # unchunked search: same index, same neighbours


def test_diagnosis_on_ray_equals_in_process(ray_cluster, small_scenario):
    _, cluster = ray_cluster
    s, probs = small_scenario.scenario, small_scenario.test_probs
    args = (s.test.embeddings, s.test.labels, probs, s.test.metadata)
    here = Diagnoser(seed=3, compute=IN_PROCESS).fit(*args)
    there = Diagnoser(seed=3, compute=cluster).fit(*args)
    np.testing.assert_array_equal(there.region_of_sample, here.region_of_sample)
    assert [r.failures for r in there.regions] == [r.failures for r in here.regions]


def test_a_server_with_ray_address_answers_as_an_in_process_one(ray_cluster, small_scenario, tmp_path):
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    answers = []
    for name, overrides in (("here", {"index_shards": 2}), ("ray", {"ray_address": address})):
        server = start_server(tmp_path / name, **overrides)
        client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=300)
        try:
            run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                                metadata=s.test.metadata)
            pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1], num_classes=len(s.class_names))
            pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata)
            diagnosis = run.diagnose(progress=False, seed=3).message
            picks = run.suggest(pool, budget=150)
            # "More like these" ranks with the rows the shards hold too (no pool vectors in the server).
            like = run.suggest(pool, budget=60, query_ids=s.test.ids[:10].tolist(), progress=False)
            assert len(like) == 60 and like["nearest_failure_id"].isin([*s.test.ids[:10], ""]).all()
            answers.append(([(r.support, r.failures) for r in diagnosis.regions], picks["sample_id"].tolist(),
                            like["sample_id"].tolist()))
            assert server.servicer.indexes.loaded()[pool.id] == len(s.pool)
            assert server.servicer.compute.name.startswith("Ray") == (name == "ray")
        finally:
            client.close()
            server.stop()
    assert answers[0][0] and answers[1] == answers[0]


def _pool_server_answers(server, s, sm, queries: np.ndarray) -> tuple:
    """Suggestions of one targeted round and the pool index's neighbours of ``queries``, through ``server``."""
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=300)
    try:
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                            metadata=s.test.metadata)
        pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1], num_classes=len(s.class_names))
        # Several batches, so that the pool's rows span several row files and shards start mid-file.
        pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata,
                 batch_size=1700)
        run.diagnose(progress=False, seed=3)
        picks = run.suggest(pool, budget=150)["sample_id"].tolist()
        index = server.servicer.indexes.loaded_index(pool.id)
        assert index is not None and index.ntotal == len(s.pool)
        return picks, index.search(queries, 10), index
    finally:
        client.close()


def _in_process_answers(s, sm, queries: np.ndarray, root) -> tuple:
    """The reference: the same round through a server without Ray (one in-process index)."""
    here = start_server(root)
    try:
        return _pool_server_answers(here, s, sm, queries)
    finally:
        here.stop()


def test_a_ray_server_builds_its_shards_from_the_pool_row_files(ray_cluster, small_scenario, tmp_path):
    """The Ray shards read their rows from the store's row files (Store.row_files), not from the
    server, and the server answers as one in-process flat index."""
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    queries = s.test.embeddings[:64]
    picks_here, (d_here, i_here), single = _in_process_answers(s, sm, queries, tmp_path / "here")
    assert isinstance(single, PoolIndex)
    there = start_server(tmp_path / "ray", ray_address=address)
    try:
        picks_ray, (d_ray, i_ray), sharded = _pool_server_answers(there, s, sm, queries)
        assert isinstance(sharded, ShardedPoolIndex) and sharded.shards == 2
        # Only shards built from a row source can re-read their rows: exact_search proves the path.
        d_exact, i_exact = sharded.exact_search(queries, 10)
    finally:
        there.stop()
    assert picks_ray == picks_here
    np.testing.assert_array_equal(i_ray, i_here)
    np.testing.assert_allclose(d_ray, d_here, atol=1e-5)
    np.testing.assert_array_equal(i_exact, i_here)


def test_shards_that_cannot_open_the_row_files_get_their_rows_from_the_server(ray_cluster, small_scenario,
                                                                               postgres_uri, tmp_path):
    """Row files on a ``memory://`` root exist in the server's process only: the Ray shards cannot read
    them, so the server reads the rows and ships them (the path before row files), same answers."""
    import uuid
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    queries = s.test.embeddings[:64]
    picks_here, (_, i_here), _ = _in_process_answers(s, sm, queries, tmp_path / "here")
    there = start_server(tmp_path / "ray", ray_address=address, store=postgres_uri,
                         files=f"memory://bs-{uuid.uuid4().hex[:8]}")
    try:
        picks_ray, (_, i_ray), sharded = _pool_server_answers(there, s, sm, queries)
        with pytest.raises(ValueError, match="row source"):      # built from the arrays the server sent
            sharded.exact_search(queries, 10)
    finally:
        there.stop()
    assert picks_ray == picks_here
    np.testing.assert_array_equal(i_ray, i_here)


def _unscored_pool_picks(server, s, sm) -> tuple[list[str], str]:
    """Targeted on a pool without probabilities and no diagnosis: the server falls back to kcenter,
    which needs the pool's vectors in the server even when its index is sharded."""
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=300)
    try:
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
        # Labels the model always gets right: no failure, so no region to target.
        run.log_predictions(s.test.ids, s.test.embeddings, labels=np.asarray(sm.test_probs).argmax(1),
                            probabilities=sm.test_probs, metadata=s.test.metadata)
        pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1])    # no model scores
        pool.add(s.pool.ids, s.pool.embeddings, metadata=s.pool.metadata)
        run.diagnose(progress=False, seed=3)
        picks = run.suggest(pool, budget=40, strategy="targeted")
        return picks["sample_id"].tolist(), " ".join(picks["reason"].tolist()[:1])
    finally:
        client.close()


def test_a_ray_server_without_regions_or_probabilities_falls_back_to_kcenter_like_one_process(
        ray_cluster, small_scenario, tmp_path):
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    here = start_server(tmp_path / "here")
    try:
        picks_here, reason_here = _unscored_pool_picks(here, s, sm)
    finally:
        here.stop()
    there = start_server(tmp_path / "ray", ray_address=address)
    try:
        picks_ray, reason_ray = _unscored_pool_picks(there, s, sm)
    finally:
        there.stop()
    assert "kcenter" in reason_here and "kcenter" in reason_ray
    assert len(picks_ray) == 40 and picks_ray == picks_here


def test_deleting_a_pool_on_a_ray_server_stops_its_shards(ray_cluster, small_scenario, tmp_path):
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    there = start_server(tmp_path / "ray", ray_address=address)
    client = Client(f"127.0.0.1:{there.port}", retries=2, timeout=300)
    try:
        _pool_server_answers(there, s, sm, s.test.embeddings[:4])
        (pool,), (run,) = client.list_pools(), client.list_runs()
        index = there.servicer.indexes.loaded_index(pool.id)
        assert isinstance(index, ShardedPoolIndex) and index.ntotal == len(s.pool)
        assert client.delete_pool(pool.id).rows == len(s.pool)
        assert there.servicer.indexes.loaded_index(pool.id) is None and index.ntotal == 0   # shards stopped
        with pytest.raises(NotFoundError):
            run.suggest(pool.id, budget=5)
        assert not [p for p in (tmp_path / "ray").rglob("*") if pool.id in str(p)]
        assert run.diagnose(progress=False).id                     # the server still serves through Ray
    finally:
        client.close()
        there.stop()


def test_a_damaged_pool_row_file_on_a_ray_server_is_data_loss_and_the_server_goes_on(ray_cluster, small_scenario,
                                                                                     tmp_path, caplog):
    """A flipped byte in one of the pool's row files, found by the Ray shards when a restarted server
    builds them from the files (the shards the first server built are gone, as after a restart of the
    Ray cluster; while they live, a server uses them and reads no pool vector): targeted Suggest is DATA_LOSS naming the pool
    (no pick from damaged rows) with the store's message, not Ray's; the shards' DataLoss reaches the
    server as itself, so its log says what the shards met; no shard is left loaded, the server goes
    on serving, and once the file is whole again the same call succeeds."""
    import grpc
    from blindspots import BlindspotsError
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    data = tmp_path / "ray"
    first = start_server(data, ray_address=address)
    client = Client(f"127.0.0.1:{first.port}", retries=2, timeout=300)
    try:
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                            metadata=s.test.metadata, progress=False)
        pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1], num_classes=len(s.class_names))
        pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata,
                 batch_size=1700, progress=False)
        run.diagnose(progress=False, seed=3)
    finally:
        client.close()
        first.stop()
    import ray

    from blindspots_server.server.pool_indexes import SHARED_NAME
    ray.kill(ray.get_actor(SHARED_NAME))        # the shards go with it (they are its own actors)
    victim = sorted((data / "pools" / pool.id).glob("part-*.parquet"))[1]
    whole = victim.read_bytes()
    damaged = bytearray(whole)
    damaged[len(damaged) // 2] ^= 0xFF          # inside the embedding column, the file's bulk
    victim.write_bytes(bytes(damaged))
    there = start_server(data, ray_address=address)
    client = Client(f"127.0.0.1:{there.port}", retries=2, timeout=300)
    try:
        with pytest.raises(BlindspotsError, match=pool.id) as err:
            client.suggest(run.id, pool.id, budget=50, progress=False)
        assert err.value.code == grpc.StatusCode.DATA_LOSS, err.value
        assert "stored data is damaged" in err.value.details and "ray::" not in err.value.details
        (met,) = [r.getMessage() for r in caplog.records if "could not read the pool's row files" in r.getMessage()]
        assert "(DataLoss: " in met and "CRC checksum verification failed" in met, met
        assert there.servicer.indexes.loaded_index(pool.id) is None
        assert client.get_run(run.id).message.num_rows == len(s.test)        # still serving
        victim.write_bytes(whole)
        picks = client.suggest(run.id, pool.id, budget=50, progress=False)
        assert len(picks) == 50 and isinstance(there.servicer.indexes.loaded_index(pool.id), ShardedPoolIndex)
    finally:
        client.close()
        there.stop()


class _RayReplica:
    """A server process (``python -m blindspots_server``) on a PostgreSQL store and a file root every
    Ray node reads, connected to the test's Ray cluster."""

    def __init__(self, store: str, files, address: str, log):
        import subprocess
        import sys

        import grpc

        from conftest import free_port
        self.port = free_port()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "blindspots_server", "--store", store, "--files", str(files), "--port",
                 str(self.port), "--ray-address", address], stdout=out, stderr=subprocess.STDOUT)
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        self.client = Client(f"127.0.0.1:{self.port}", retries=2, timeout=300)

    def stop(self, sig=None) -> None:
        import signal
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            self.proc.wait(timeout=60)


def _shared_shards(pool_id: str) -> list[tuple[list[int], int]]:
    """Of each set of shards the cluster keeps for the pool: the rows per shard and how often they
    were built (read from the cluster's SharedIndexes actor; the test process is a Ray driver too)."""
    import ray

    from blindspots_server.server.pool_indexes import SHARED_NAME
    try:
        shared = ray.get_actor(SHARED_NAME)
    except ValueError:          # no server has started it
        return []
    keys = [k for k in ray.get(shared.keys.remote()) if k.startswith(f"{pool_id}:")]
    return [ray.get(shared.describe.remote(k)) for k in keys]


def test_server_processes_share_a_pool_s_shards_on_the_cluster_and_a_restart_keeps_them(
        ray_cluster, small_scenario, postgres_uri, tmp_path):
    """Two replicas (separate processes) on one store and one Ray cluster use one set of index shards,
    kept by a named actor of the cluster (built once, by the index-build job of one of them) and pick the
    same; a replica killed and started again finds the shards, with nothing rebuilt; rows added later
    go to the last shard; deleting the pool stops the shards."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    files, log = tmp_path / "files", tmp_path / "replicas.log"
    a, b = (_RayReplica(postgres_uri, files, address, log) for _ in range(2))
    try:
        run = a.client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                            metadata=s.test.metadata, progress=False)
        pool = a.client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1],
                                    num_classes=len(s.class_names))
        first = len(s.pool) - 500
        pool.add(s.pool.ids[:first], s.pool.embeddings[:first], probabilities=sm.pool_probs[:first],
                 metadata=s.pool.metadata.iloc[:first], batch_size=1700, progress=False)
        run.diagnose(progress=False, seed=3)

        def picks(replica) -> list[str]:
            return replica.client.suggest(run.id, pool.id, 120, allow_repeats=True, seed=1)["sample_id"].tolist()
        with ThreadPoolExecutor(2) as both:
            from_a, from_b = both.map(picks, (a, b))
        assert len(from_a) == 120 and from_a == from_b
        ((sizes, builds),) = _shared_shards(pool.id)
        assert builds == 1 and sum(sizes) == first and len(sizes) == 2

        a.stop(signal.SIGKILL)
        a = _RayReplica(postgres_uri, files, address, log)
        assert picks(a) == from_a
        assert _shared_shards(pool.id) == [(sizes, 1)]        # found again, not built again

        more = b.client.get_pool(pool.id)
        more.add(s.pool.ids[first:], s.pool.embeddings[first:], probabilities=sm.pool_probs[first:],
                 metadata=s.pool.metadata.iloc[first:], progress=False)
        picks(a)
        ((grown, builds),) = _shared_shards(pool.id)
        assert builds == 1 and sum(grown) == len(s.pool) and grown[0] == sizes[0]      # the last shard grew

        b.client.delete_pool(pool.id)
        assert not _shared_shards(pool.id)
        with pytest.raises(NotFoundError):
            picks(a)
    finally:
        a.stop()
        b.stop()


def test_servers_that_ask_for_a_pool_s_shards_at_once_build_them_once(ray_cluster, tmp_path):
    """Two PoolIndexes (two servers' worth) over one store, asking for a new pool's shards from two
    threads at the same moment: the cluster's SharedIndexes actor takes one call at a time for a pool,
    so the shards are built once and both answer as one flat index."""
    import threading
    import time

    from blindspots_server.server.pool_indexes import PoolIndexes
    from blindspots_server.storage import PoolRecord, open_store
    from blindspots_server.storage.rows import build_table
    _, cluster = ray_cluster
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6000, 16)).astype(np.float32)
    store = open_store(str(tmp_path / "data"))
    try:
        store.create_pool(PoolRecord(id="pool_race", name="p", project="p", embedding_dim=16, num_classes=0,
                                     created_at=time.time()))
        for i in range(3):
            ids = [f"s{j}" for j in range(2000 * i, 2000 * (i + 1))]
            store.ingest_batch("pool", "pool_race", f"b{i}", build_table(ids, x[2000 * i:2000 * (i + 1)], None,
                                                                          None, None, {}), {})
        servers = [PoolIndexes(store, shards=2, compute=cluster) for _ in range(2)]
        start, answers = threading.Barrier(2), [None, None]

        def ask(i: int) -> None:
            start.wait()
            answers[i] = servers[i].ensure_at("pool_race", 6000)
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert all(a is not None for a in answers)
        assert _shared_shards("pool_race") == [([3000, 3000], 1)]
        assert answers[0].workers == answers[1].workers          # the same two actors
        queries = rng.normal(size=(30, 16)).astype(np.float32)
        flat = PoolIndex(16, kind="flat").build(x).search(queries, 5)[1]
        for a in answers:
            np.testing.assert_array_equal(a.search(queries, 5)[1], flat)
        servers[0].forget("pool_race")
        assert not _shared_shards("pool_race")
    finally:
        store.close()


def test_a_shard_lost_mid_call_is_unavailable_and_the_retry_builds_the_shards_again(ray_cluster, small_scenario,
                                                                                    tmp_path):
    """A pool's shard actor gone (as with its Ray node): the Suggest that meets it is UNAVAILABLE saying to
    retry, with the pool's shards dropped; the retry builds them anew and picks as before."""
    import ray

    from blindspots import BlindspotsError
    address, _ = ray_cluster
    s, sm = small_scenario.scenario, small_scenario
    there = start_server(tmp_path / "ray", ray_address=address)
    try:
        picks, _, index = _pool_server_answers(there, s, sm, s.test.embeddings[:4])
        with Client(f"127.0.0.1:{there.port}", retries=0, timeout=300) as once:
            (pool,), (run,) = once.list_pools(), once.list_runs()
            before = index.workers
            ray.kill(before[-1])
            with pytest.raises(BlindspotsError, match="index shards were lost mid-call.*retry") as err:
                once.suggest(run.id, pool.id, 150, allow_repeats=True)
            assert err.value.code.name == "UNAVAILABLE"
            assert _shared_shards(pool.id) == []                       # dropped
        with Client(f"127.0.0.1:{there.port}", retries=2, timeout=300) as client:
            again = client.suggest(run.id, pool.id, 150, allow_repeats=True)["sample_id"].tolist()
        assert again == picks
        rebuilt = there.servicer.indexes.loaded_index(pool.id)
        assert rebuilt.ntotal == len(s.pool) and not set(rebuilt.workers) & set(before)
    finally:
        there.stop()


def test_past_shard_memory_mb_the_least_recently_used_pool_s_shards_go_and_are_built_again(ray_cluster, tmp_path,
                                                                                          caplog):
    """shard_memory_mb on a Ray server: two pools whose shards do not fit together under the cap; asking
    for one's shards stops the other's (a log line, the counter, the gauge), and the next Suggest on the
    pool whose shards went builds them again from the row files, with the same picks."""
    import logging

    import ray

    from blindspots_server.server.pool_indexes import SHARED_NAME
    from conftest import free_port, index_builds_done, metric_sample, metrics_text
    address, _ = ray_cluster
    try:            # the shards earlier tests left on the cluster would be stopped (and counted) too
        ray.get(ray.get_actor(SHARED_NAME).stop.remote(""))
    except ValueError:          # no server has started the actor yet
        pass
    rng = np.random.default_rng(11)
    dim, rows = 32, 6000                   # Flat: 6000 x 32 x 4 bytes = 0.73 MiB a pool, in two shards
    server = start_server(tmp_path / "data", ray_address=address, index_shards=2, shard_memory_mb=1,
                          metrics_port=free_port())
    caplog.set_level(logging.INFO, logger="blindspots.server")
    try:
        with Client(f"127.0.0.1:{server.port}", retries=2, timeout=300) as client:
            run = client.create_run("eval", class_names=["a", "b"], embedding_dim=dim)
            run.log_predictions([f"t{i}" for i in range(100)], rng.normal(size=(100, dim)).astype(np.float32),
                                labels=rng.integers(0, 2, 100), probabilities=rng.dirichlet([1, 1], 100),
                                progress=False)
            pools = []
            for name in ("first", "second"):
                pool = client.create_pool(name, embedding_dim=dim)
                pool.add([f"{name}{i}" for i in range(rows)], rng.normal(size=(rows, dim)).astype(np.float32),
                         batch_size=2500, progress=False)
                pools.append(pool)
                index_builds_done(server, len(pools), timeout_s=300)
            first, second = pools
            info = client.server_info()
            assert (info.compute, info.index_shards) == ("Ray cluster (2 nodes)", 2)

            def like(pool) -> list[str]:
                return client.suggest(run.id, pool.id, 40, strategy="similar", query_ids=["t0", "t1"],
                                      allow_repeats=True, progress=False)["sample_id"].tolist()
            held = lambda: [key.split(":")[0] for key in ray.get(ray.get_actor(SHARED_NAME).keys.remote())]  # noqa: E731
            assert held() == [second.id]                                        # the first pool's went
            caplog.clear()
            picks = like(first)
            assert f"pool {second.id}: its index shards were stopped" in caplog.text
            assert held() == [first.id]
            ((sizes, builds),) = _shared_shards(first.id)
            assert (sizes, builds) == ([3000, 3000], 1)                         # built again, anew
            text = metrics_text(server)
            one = metric_sample(text, "blindspots_pool_index_shards_memory_bytes")
            assert 0.6 * (1 << 20) < one <= (1 << 20)                           # one pool fits; two do not
            assert metric_sample(text, "blindspots_pool_index_shard_evictions_total") == 2
            like(second)
            assert like(first) == picks                                         # built a third time
            assert metric_sample(metrics_text(server), "blindspots_pool_index_shard_evictions_total") == 4
    finally:
        server.stop()
