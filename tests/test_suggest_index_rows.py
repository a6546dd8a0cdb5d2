"""In one process a targeted Suggest ranks with the rows the pool index holds, instead of reading the
pool's vectors from its files: the same picks as with the rows read; over an index of codes (past
2 GiB of vectors) it reads the rows after all."""
from __future__ import annotations

from blindspots_server.core import pool_index
from blindspots_server.core.pool_index import PoolIndex

from test_api import _log_scenario


def _picks(run, pool, strategy: str = "targeted") -> list[str]:
    return list(run.suggest(pool, budget=150, strategy=strategy, progress=False, allow_repeats=True)["sample_id"])


def test_targeted_ranks_with_the_index_rows_and_picks_as_with_the_file_rows(server, client, small_scenario,
                                                                            monkeypatch):
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    from_index = _picks(run, pool)
    index = server.servicer.indexes.loaded_index(pool.id)
    assert index.kind_ == "flat" and index.holds_rows
    # The same call with the rows read from the pool's files (as an index of codes has them read).
    with monkeypatch.context() as patch:
        patch.setattr(PoolIndex, "holds_rows", property(lambda self: False))
        from_files = _picks(run, pool)
    # The index's rows are normalised by faiss, the read ones by numpy (6e-8 apart at most): the same
    # picks, whose rank order may differ among near-ties.
    assert len(from_index) == 150 and sorted(from_index) == sorted(from_files)


def test_targeted_over_an_index_of_codes(server, client, small_scenario, monkeypatch):
    """The path where the server reads the pool's rows for the ranking (an index of codes gives only
    decoded rows): it picks near the regions, and not what the decoded rows would pick."""
    s = small_scenario.scenario
    rows, dim = s.pool.embeddings.shape
    # Past the limit for float32 vectors, within it for one-byte codes: IVF-SQ8, as at ~4M x 128-d.
    monkeypatch.setattr(pool_index, "FLAT_MAX_ROWS", 1000)
    monkeypatch.setattr(pool_index, "CODES_MAX_BYTES", rows * dim * 2)
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    picks = run.suggest(pool, budget=150, progress=False)
    index = server.servicer.indexes.loaded_index(pool.id)
    assert index.kind_ == "ivfsq8" and not index.holds_rows
    assert len(picks) == 150 and picks["sample_id"].is_unique
    assert (picks["region_id"] >= 0).mean() > 0.5                # near the failure regions, not margin's
    # Ranked with the decoded codes instead (as if the index held the rows), the picks differ on
    # this data: so the ones above came from the rows read.
    rows_read = _picks(run, pool)
    with monkeypatch.context() as patch:
        patch.setattr(PoolIndex, "holds_rows", property(lambda self: True))
        decoded = _picks(run, pool)
    assert set(rows_read) != set(decoded)
