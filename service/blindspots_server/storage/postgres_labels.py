"""Labels in the PostgreSQL catalog: one row per labeled run or pool sample.

A mixin of :class:`.postgres.PostgresStore` (it uses the store's ``_tx`` and
``_query``), the twin of :mod:`.embedded_labels` with the same semantics: a
sample labeled again keeps its newest label, and within one import the last
label given for an id wins.
"""
from __future__ import annotations

from .base import LabelsOutcome

LABELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
  target TEXT, target_id TEXT, sample_id TEXT, label TEXT, source TEXT, labeled_at DOUBLE PRECISION,
  PRIMARY KEY (target, target_id, sample_id));
"""


class PostgresLabels:
    """Label writes and sample-id checks of the Store interface (label reads: sql_catalog.SqlCatalog)."""

    def unknown_sample_ids(self, target: str, target_id: str, sample_ids: list[str]) -> list[str]:
        self._table_name(target)
        known = {r[0] for r in self._query(
            "SELECT sample_id FROM sample_ids WHERE target=%s AND target_id=%s AND sample_id = ANY(%s)",
            (target, target_id, list(sample_ids)))}
        return [s for s in sample_ids if s not in known]

    def save_labels(self, target: str, target_id: str, sample_ids: list[str], labels: list[str],
                    source: str, labeled_at: float) -> LabelsOutcome:
        self._table_name(target)
        if len(sample_ids) != len(labels):
            raise ValueError(f"labels has {len(labels)} values but sample_ids has {len(sample_ids)}")
        latest = dict(zip(sample_ids, labels))
        with self._tx() as cur:
            # One import per run or pool at a time (replicas included), so that its counts are its own.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"labels/{target}/{target_id}",))
            self._hold(cur, target, target_id)
            cur.execute("SELECT count(*) FROM labels WHERE target=%s AND target_id=%s AND sample_id = ANY(%s)",
                        (target, target_id, list(latest)))
            replaced = cur.fetchone()[0]
            cur.executemany(
                "INSERT INTO labels VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (target, target_id, sample_id) "
                "DO UPDATE SET label = EXCLUDED.label, source = EXCLUDED.source, labeled_at = EXCLUDED.labeled_at",
                [(target, target_id, sid, label, source, labeled_at) for sid, label in latest.items()])
            cur.execute("SELECT count(*) FROM labels WHERE target=%s AND target_id=%s", (target, target_id))
            total = cur.fetchone()[0]
        return LabelsOutcome(stored=len(latest), replaced=int(replaced), total=int(total))
