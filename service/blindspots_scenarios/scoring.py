"""Scoring a slice-discovery method's regions against a family's planted truth.

A method returns ``Found``: row masks of its regions (in order of its ranking),
and per region the row mask of its explanation if it gives one. Metrics, per
planted condition c (its rows T_c, the failures F):

- best F1 on rows: max over regions R of F1(R, T_c);
- best F1 on failures: max over regions of F1(R & F, T_c & F);
- union F1: F1 on failures of the union of the regions assigned to c (a region
  is assigned to the condition holding the plurality of its failures);
- fragments: number of regions assigned to c;
- explanation F1: rows matched by the explanation of c's best region vs rows
  matched by c's true cause (row sets, so any predicate language compares);

and per family: coverage (share of failures inside some region), and the
number of regions (on a null family every one of them is false).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import Instance


@dataclass
class Found:
    """What a method reported on one instance."""

    method: str
    regions: list[np.ndarray]                       # bool row masks, best first
    explanations: list[np.ndarray | None] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ConditionScore:
    condition: str
    kind: str
    has_cause: bool
    best_f1_rows: float
    best_f1_failures: float
    union_f1: float
    fragments: int
    explanation_f1: float        # nan when the condition has no cause or the method gives no explanations


@dataclass
class InstanceScore:
    family: str
    seed: int
    method: str
    conditions: list[ConditionScore]
    coverage: float              # share of failures inside some region
    condition_coverage: float    # share of the planted conditions' failures inside some region
    num_regions: int
    seconds: float


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    denom = int(pred.sum()) + int(truth.sum())
    return 2.0 * int((pred & truth).sum()) / denom if denom else 0.0


def score(inst: Instance, found: Found, failed: np.ndarray | None = None) -> InstanceScore:
    """Score one method's regions on one instance (``failed``: the failure mask, default mispredicted)."""
    failed = inst.failed if failed is None else failed
    cond = inst.test.condition
    regions = [np.asarray(r, dtype=bool) for r in found.regions]
    # Each region goes to the condition (or -1, none) holding most of its failures.
    owner = []
    for r in regions:
        hits = cond[r & failed]
        owner.append(int(np.bincount(hits + 1, minlength=len(inst.conditions) + 1).argmax()) - 1
                     if len(hits) else -1)
    anywhere = np.zeros(len(cond), dtype=bool)
    for r in regions:
        anywhere |= r
    scores = []
    for k, c in enumerate(inst.conditions):
        truth = cond == k
        f_rows = [f1(r, truth) for r in regions]
        f_fail = [f1(r & failed, truth & failed) for r in regions]
        mine = [i for i, o in enumerate(owner) if o == k]
        union = np.zeros(len(cond), dtype=bool)
        for i in mine:
            union |= regions[i]
        cause = inst.cause_mask(k)
        expl = float("nan")
        if cause is not None and found.explanations:
            best = int(np.argmax(f_fail)) if regions else -1
            mask = found.explanations[best] if best >= 0 and best < len(found.explanations) else None
            expl = f1(mask, cause) if mask is not None else 0.0
        scores.append(ConditionScore(c.name, c.kind, cause is not None, max(f_rows, default=0.0),
                                     max(f_fail, default=0.0), f1(union & failed, truth & failed),
                                     len(mine), expl))
    planted = (cond >= 0) & failed
    return InstanceScore(inst.family, inst.seed, found.method, scores,
                         float((anywhere & failed).sum() / max(failed.sum(), 1)),
                         float((anywhere & planted).sum() / max(planted.sum(), 1)),
                         len(regions), found.seconds)


def probe_f1(inst: Instance, folds: int = 3, seed: int = 0) -> list[float]:
    """Ceiling: a supervised linear probe's cross-validated F1 per condition, among the failures.

    Logistic regression on the failures' standardised embeddings predicting the
    planted condition (or none); what an unsupervised method could at best recover.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    failed = inst.failed
    y = inst.test.condition[failed]
    x = StandardScaler().fit_transform(inst.embeddings[failed])
    present = np.unique(y)
    counts = np.bincount(y + 1)
    if len(present) < 2 or counts[counts > 0].min() < folds:
        return [float("nan")] * len(inst.conditions)
    pred = cross_val_predict(LogisticRegression(max_iter=500, C=1.0), x, y,
                             cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return [f1(pred == k, y == k) if (y == k).any() else float("nan") for k in range(len(inst.conditions))]
