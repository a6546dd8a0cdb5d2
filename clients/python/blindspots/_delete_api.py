"""Client methods that delete runs and pools, one at a time or by a retention rule."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Union

import pandas as pd

from .errors import FailedPreconditionError, NotFoundError
from .v1 import blindspots_pb2 as pb


@dataclass(frozen=True)
class DeleteSummary:
    """What the server removed with a run or pool."""

    id: str
    rows: int
    diagnoses: int
    suggestion_sets: int            # made for the run or from the pool; their picks may be picked again
    labels: int
    files: int
    bytes: int

    @classmethod
    def from_message(cls, m: pb.DeleteResponse) -> "DeleteSummary":
        return cls(id=m.id, rows=m.rows, diagnoses=m.diagnoses, suggestion_sets=m.suggestion_sets,
                   labels=m.labels, files=m.files, bytes=m.bytes)


PRUNE_COLUMNS = ["id", "name", "project", "model", "version", "created_at", "last_used_at", "rows", "action", "files",
                 "bytes"]


class DeleteAPI:
    """Mixed into :class:`blindspots.Client`."""

    def delete_run(self, run, *, missing_ok: bool = False, force: bool = False) -> Optional[DeleteSummary]:
        """Delete a run (``Run`` or id) with its rows, diagnoses, labels and the suggestion sets
        made for it. ``missing_ok``: a run that is not there (deleted before, or by a retried
        call whose first answer was lost) returns None instead of raising NotFoundError. A run
        with a pending or running job raises FailedPreconditionError: cancel the job first; so
        does one holding labels (relabeled test rows) unless ``force``."""
        return self._delete(self.stub.DeleteRun, pb.DeleteRunRequest(run_id=_id(run), force=force), missing_ok)

    def delete_pool(self, pool, *, missing_ok: bool = False, force: bool = False) -> Optional[DeleteSummary]:
        """Delete a pool (``Pool`` or id) with its rows, index, labels and the suggestion sets made
        from it (see :meth:`delete_run` for ``missing_ok``). A pool holding labels raises
        FailedPreconditionError unless ``force``: export them first if the next training run needs
        them (``Pool.labels()``)."""
        return self._delete(self.stub.DeletePool, pb.DeletePoolRequest(pool_id=_id(pool), force=force),
                            missing_ok)

    def delete_suggestion_set(self, suggestion_set_id: str, *, missing_ok: bool = False) -> Optional[DeleteSummary]:
        """Delete a stored suggestion set: a round that will not be labeled. Its picks are released
        (the summary's ``rows``): later rounds may pick them again; labels already imported for
        them stay, and keep them out. ``missing_ok`` as in :meth:`delete_run`."""
        return self._delete(self.stub.DeleteSuggestionSet,
                            pb.DeleteSuggestionSetRequest(suggestion_set_id=suggestion_set_id), missing_ok)

    def _delete(self, method, request, missing_ok: bool) -> Optional[DeleteSummary]:
        try:
            return DeleteSummary.from_message(self._unary(method, request))
        except NotFoundError:
            if missing_ok:
                return None
            raise

    def prune_runs(self, keep: int, *, project: str = "", model_name: Optional[str] = None,
                   older_than: Union[dt.timedelta, float, None] = None,
                   unused_for: Union[dt.timedelta, float, None] = None, dry_run: bool = False,
                   force: bool = False) -> pd.DataFrame:
        """Retention: keep the ``keep`` newest runs of each model (runs grouped by project and
        model name) and delete the rest; with ``older_than`` (a timedelta, or days) only those
        created longer ago than that, with ``unused_for`` only those last used (``last_used_at``:
        created, ingested into, diagnosed or suggested from) longer ago. ``keep=1, unused_for=D``
        is the server's ``run_retention_days`` D: with ``dry_run``, what it would delete.
        ``project`` / ``model_name`` narrow which runs are looked at. Returns one row per run it
        deleted (``dry_run``: would delete, with the bytes that would free), oldest first; a run
        with an unfinished job, or with labels unless ``force``, is left and says why in ``action``."""
        runs = [r for r in self.list_runs(project) if model_name is None or r.message.model_name == model_name]
        return self._prune(runs, lambda m: (m.project, m.model_name), self.delete_run, keep, older_than,
                           unused_for, dry_run, force, "run")

    def prune_pools(self, keep: int, *, project: str = "", older_than: Union[dt.timedelta, float, None] = None,
                    unused_for: Union[dt.timedelta, float, None] = None, dry_run: bool = False,
                    force: bool = False) -> pd.DataFrame:
        """As :meth:`prune_runs`, for pools: keep the ``keep`` newest pools of each project and
        delete the rest (``older_than``, ``unused_for``: as there; a pool is used when created,
        ingested into or suggested from). ``keep=1, unused_for=D`` is the server's
        ``pool_retention_days`` D. A pool holding labels from a labeling tool is left unless
        ``force``: export them first (``Pool.labels()``). The ``model`` and ``version`` columns are
        empty."""
        return self._prune(self.list_pools(project), lambda m: m.project, self.delete_pool, keep, older_than,
                           unused_for, dry_run, force, "pool")

    def _prune(self, targets: list, group_of, delete, keep: int, older_than, unused_for, dry_run: bool,
               force: bool, what: str) -> pd.DataFrame:
        if keep < 0:
            raise ValueError(f"keep must be 0 or more, not {keep}")
        older_than, unused_for = (d if d is None or isinstance(d, dt.timedelta) else dt.timedelta(days=float(d))
                                  for d in (older_than, unused_for))
        now = dt.datetime.now(dt.timezone.utc)
        groups: dict[object, list] = {}
        for target in targets:
            groups.setdefault(group_of(target.message), []).append(target)
        rows = []
        for members in groups.values():
            members.sort(key=lambda t: (t.message.created_at.ToNanoseconds(), t.id), reverse=True)
            for target in members[keep:]:
                m = target.message
                created = m.created_at.ToDatetime(tzinfo=dt.timezone.utc)
                used = m.last_used_at.ToDatetime(tzinfo=dt.timezone.utc) if m.HasField("last_used_at") else None
                if older_than is not None and now - created < older_than:
                    continue
                if unused_for is not None:
                    if used is None:
                        raise ValueError(f"unused_for: the server does not say when {what}s were last used "
                                         "(it predates last_used_at); use older_than")
                    if now - used < unused_for:
                        continue
                row = {"id": target.id, "name": target.name, "project": m.project,
                       "model": getattr(m, "model_name", ""), "version": getattr(m, "model_version", ""),
                       "created_at": created, "last_used_at": used, "rows": m.num_rows,
                       "action": "would delete", "files": 0, "bytes": m.stored_bytes}
                if not dry_run:
                    try:
                        out = delete(target.id, missing_ok=True, force=force)
                    except FailedPreconditionError as exc:
                        row["action"] = f"kept: {exc.details}"
                    else:
                        row["action"] = "deleted" if out is not None else "already gone"
                        row["files"], row["bytes"] = (out.files, out.bytes) if out is not None else (0, 0)
                rows.append(row)
        frame = pd.DataFrame(rows, columns=PRUNE_COLUMNS)
        return frame.sort_values(["created_at", "id"], ignore_index=True) if len(frame) else frame


def _id(obj) -> str:
    return obj if isinstance(obj, str) else obj.id
