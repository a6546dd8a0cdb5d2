"""Diagnosis and suggestion results as Python objects and DataFrames."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
import pandas as pd

from .v1 import blindspots_pb2 as pb

if TYPE_CHECKING:
    from .comparison import Comparison

KIND_NAMES = {pb.DATA_GAP: "data_gap", pb.LABEL_NOISE: "label_noise", pb.MIXED: "mixed",
              pb.REGION_KIND_UNSPECIFIED: "unspecified"}


# Region evidence that is measured only sometimes: the label test (nearby failures of one
# prediction share the given label this often, against two failures at random; three or more
# classes) and, with two classes, the failure lift (the failures' neighbours fail this often,
# against rows of their prediction).
_TYPING_TESTS = ("failure_label_agreement", "failure_label_chance",
                 "failure_neighbour_failures", "prediction_failure_rate")


class Diagnosis:
    """A finished diagnosis. ``message`` is the full API message
    (``blindspots.v1.Diagnosis``); the properties and frames cover common use."""

    def __init__(self, message: pb.Diagnosis, client=None):
        self.message = message
        self._client = client                # the Client that fetched it, for region_members

    def region_members(self, region_id: int, **kwargs) -> pd.DataFrame:
        """Every row of one of this diagnosis's regions (see ``Client.region_members``)."""
        if self._client is None:
            raise ValueError("this Diagnosis was built without a client: use client.region_members("
                             "diagnosis.id, region_id)")
        return self._client.region_members(self.id, region_id, **kwargs)

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def run_id(self) -> str:
        return self.message.run_id

    @property
    def regions(self):
        return list(self.message.regions)

    @property
    def previous_version(self) -> Optional["Comparison"]:
        """This run against the previous version of its model (of the runs of the same project
        and model created before it that have a diagnosis, the newest on the same test rows),
        made with the diagnosis; None when there is none. ``.regressions()`` is what got worse."""
        if not self.message.HasField("previous_version"):
            return None
        from .comparison import Comparison      # comparison.py imports this module
        return Comparison(self.message.previous_version)

    @property
    def slices(self):
        return list(self.message.slices)

    @property
    def baseline_error_rate(self) -> float:
        return self.message.baseline_error_rate

    def to_frame(self) -> pd.DataFrame:
        """One row per failure region, ranked by excess errors."""
        rows = []
        for r in self.message.regions:
            top = r.explanations[0] if r.explanations else None
            conf = r.confusions[0] if r.confusions else None
            rows.append({
                "region": r.id, "kind": KIND_NAMES.get(r.kind, "unspecified"), "support": r.support,
                "failures": r.failures, "error_rate": r.error_rate, "ci_low": r.error_rate_ci.low,
                "ci_high": r.error_rate_ci.high, "lift": r.lift, "excess_errors": r.excess_errors,
                "q_value": r.q_value, "explanation": top.name if top else "",
                "explanation_f1": top.f1 if top else float("nan"),
                "top_confusion": f"{conf.true_name} -> {conf.predicted_name}" if conf else "",
                "mean_failure_confidence": r.mean_failure_confidence,
                # The region typing's tests, NaN where not measured (see _TYPING_TESTS).
                **{name: getattr(r.evidence, name) if r.evidence.HasField(name) else float("nan")
                   for name in _TYPING_TESTS},
            })
        return pd.DataFrame(rows, columns=["region", "kind", "support", "failures", "error_rate", "ci_low",
                                           "ci_high", "lift", "excess_errors", "q_value", "explanation",
                                           "explanation_f1", "top_confusion", "mean_failure_confidence",
                                           *_TYPING_TESTS])

    def unheld_confusions_frame(self) -> pd.DataFrame:
        """Confusions among the failures no region holds (given label, prediction), largest excess
        first: not tested like regions; targeted suggestions collect near those they do not type
        label noise."""
        return pd.DataFrame([{
            "given": c.true_name, "predicted": c.predicted_name, "given_label": c.true_label,
            "predicted_label": c.predicted_label, "failures": c.failures, "excess_errors": c.excess_errors}
            for c in self.message.unheld_confusions],
            columns=["given", "predicted", "given_label", "predicted_label", "failures", "excess_errors"])

    def classes_frame(self) -> pd.DataFrame:
        """One row per class (with test rows or predictions), worst first: support, failures, error
        rate with its 95% interval, lift, excess errors, q-value (within the classes), precision,
        recall, F1, and the prediction its wrong rows get most often. Empty for a diagnosis made
        before per-class statistics were kept."""
        return pd.DataFrame([{
            "class": c.name, "label": c.label, "support": c.support, "failures": c.failures,
            "error_rate": c.error_rate if c.support else float("nan"), "ci_low": c.error_rate_ci.low,
            "ci_high": c.error_rate_ci.high, "lift": c.lift if c.support else float("nan"),
            "excess_errors": c.excess_errors, "q_value": c.q_value, "predicted": c.predicted,
            "precision": c.precision if c.predicted else float("nan"),
            "recall": c.recall if c.support else float("nan"), "f1": c.f1 if c.support else float("nan"),
            "top_confusion": f"{c.top_confusion_name} ({c.top_confusion_count}x)" if c.top_confusion >= 0 else ""}
            for c in self.message.classes], columns=CLASS_COLUMNS)

    @property
    def tracked_slices(self):
        """Top slices of other versions of this model, measured on this run."""
        return list(self.message.tracked_slices)

    def slices_frame(self, tracked: bool = False) -> pd.DataFrame:
        """High-error metadata slices over the whole test set (``tracked``: the slices
        followed from other model versions instead)."""
        chosen = self.message.tracked_slices if tracked else self.message.slices
        return pd.DataFrame([{
            "slice": s.name, "support": s.support, "failures": s.failures, "error_rate": s.error_rate,
            "ci_low": s.error_rate_ci.low, "ci_high": s.error_rate_ci.high, "lift": s.lift,
            "q_value": s.q_value, "score": s.score} for s in chosen],
            columns=["slice", "support", "failures", "error_rate", "ci_low", "ci_high", "lift", "q_value",
                     "score"])

    def _headline(self) -> list[str]:
        """The first lines of :meth:`summary` (and of the notebook display): counts and error rate."""
        d = self.message
        return [f"diagnosis {d.id} of run {d.run_id}: {d.num_failures} failures in {d.num_samples} rows "
                f"(error rate {d.baseline_error_rate:.1%}, 95% CI {d.baseline_ci.low:.1%}-{d.baseline_ci.high:.1%})",
                f"{len(d.regions)} failure regions significant of {d.num_regions_tested} tested; "
                f"{d.num_hypotheses_tested} hypotheses tested at FDR {d.fdr_alpha:g}"]

    def summary(self, max_regions: int = 8) -> str:
        """A short human-readable report."""
        d = self.message
        lines = self._headline()
        for r in d.regions[:max_regions]:
            kind = KIND_NAMES.get(r.kind, "?")
            lines.append(f"  region {r.id:>3} [{kind}] {r.failures}/{r.support} wrong = {r.error_rate:.0%} "
                         f"({r.error_rate_ci.low:.0%}-{r.error_rate_ci.high:.0%}), lift {r.lift:.1f}x, "
                         f"+{r.excess_errors:.0f} excess errors")
            if r.explanations:
                e = r.explanations[0]
                lines.append(f"        explained by: {e.name} (precision {e.precision:.2f}, recall {e.recall:.2f})")
            else:
                typical = ", ".join(x.sample_id for x in r.typical_failures[:3])
                lines.append("        no metadata slice explains it: the cause is outside the metadata"
                             + (f"; look at typical failures {typical}" if typical else ""))
            if r.confusions:
                c = r.confusions[0]
                lines.append(f"        mostly: {c.true_name} -> {c.predicted_name} ({c.count}x)")
            if r.evidence.summary:
                lines.append(f"        evidence: {r.evidence.summary}")
        if d.unheld_confusions:
            lines.append("confusions outside every region (not tested like regions):")
            for c in d.unheld_confusions[:5]:
                lines.append(f"  {c.true_name} -> {c.predicted_name}: {c.failures} failures, "
                             f"+{c.excess_errors:.0f} excess errors")
        worse = [c for c in d.classes if c.support and c.q_value <= d.fdr_alpha and c.excess_errors > 0]
        if worse:
            lines.append("classes that fail more often than the test set:")
            for c in worse[:5]:
                lines.append(f"  {c.name}: {c.failures}/{c.support} wrong = {c.error_rate:.0%} "
                             f"({c.error_rate_ci.low:.0%}-{c.error_rate_ci.high:.0%}), recall {c.recall:.2f}, "
                             f"precision {c.precision:.2f}"
                             + (f"; mostly read as {c.top_confusion_name} ({c.top_confusion_count}x)"
                                if c.top_confusion >= 0 else ""))
        if d.slices:
            lines.append("high-error slices over the whole test set:")
            for s in d.slices[:5]:
                lines.append(f"  {s.name}: {s.error_rate:.0%} of {s.support} (lift {s.lift:.1f}x, q={s.q_value:.2g})")
        if d.HasField("previous_version"):
            c = d.previous_version
            worse = self.previous_version.regressions()
            lines.append(f"against the previous version {c.model_version_a or c.run_id_a} on {c.num_shared} shared "
                         f"rows: error rate {c.overall.error_rate_a:.1%} -> {c.overall.error_rate_b:.1%}; "
                         + (f"{len(worse)} findings significantly worse (" + ", ".join(worse.name[:3])
                            + (", ..." if len(worse) > 3 else "") + ")" if len(worse) else "nothing significantly worse"))
        if d.tracked_slices:
            lines.append("slices followed from other versions of this model:")
            for s in d.tracked_slices[:5]:
                lines.append(f"  {s.name}: {s.error_rate:.0%} of {s.support} (lift {s.lift:.1f}x)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis(id={self.id!r}, regions={len(self.message.regions)})"

    def _repr_html_(self, max_regions: int = 20, max_slices: int = 10) -> str:
        """How a notebook shows it: the headline, the regions ranked by excess errors and the
        high-error slices as tables, the comparison with the previous version; every text escaped."""
        d = self.message
        parts = [html_headline("blindspots-diagnosis", self._headline()),
                 html_table("Failure regions", self.to_frame()[_HTML_REGION_COLUMNS], max_regions,
                            "blindspots-regions"),
                 html_table("High-error slices over the whole test set", self.slices_frame(), max_slices,
                            "blindspots-slices"),
                 html_table("Classes, worst first", self.classes_frame()[_HTML_CLASS_COLUMNS], max_slices,
                            "blindspots-classes")]
        if d.HasField("previous_version"):
            worse = self.previous_version.regressions()
            c = d.previous_version
            parts.append(f"<p>Against the previous version {html.escape(c.model_version_a or c.run_id_a)}: error "
                         f"rate {c.overall.error_rate_a:.1%} &rarr; {c.overall.error_rate_b:.1%}; "
                         f"{len(worse)} finding(s) significantly worse</p>")
        parts.append("</div>")
        return "\n".join(parts)


CLASS_COLUMNS = ["class", "label", "support", "failures", "error_rate", "ci_low", "ci_high", "lift", "excess_errors",
                 "q_value", "predicted", "precision", "recall", "f1", "top_confusion"]
_HTML_CLASS_COLUMNS = ["class", "support", "failures", "error_rate", "ci_low", "ci_high", "q_value", "precision",
                       "recall", "f1", "top_confusion"]
_HTML_REGION_COLUMNS = ["region", "kind", "support", "failures", "error_rate", "ci_low", "ci_high", "lift",
                        "excess_errors", "q_value", "explanation", "top_confusion"]


def _html_number(x: float) -> str:
    return f"{x:.3g}"


def html_headline(css_class: str, lines: list[str]) -> str:
    """The opening of a result's notebook display: its first line in bold, the rest below; escaped."""
    first, *rest = [html.escape(line) for line in lines]
    return f"<div class=\"{css_class}\"><p><b>{first}</b>" + "".join(f"<br>{line}" for line in rest) + "</p>"


def html_table(title: str, frame: pd.DataFrame, at_most: int, css_class: str) -> str:
    """``frame``'s first ``at_most`` rows as an HTML table under ``title`` (cells escaped; numbers to
    3 significant digits); "" for an empty frame."""
    if not len(frame):
        return ""
    shown = min(len(frame), at_most)
    return (f"<p>{html.escape(title)} ({shown} of {len(frame)} shown)</p>\n"
            + frame.head(at_most).to_html(index=False, float_format=_html_number, na_rep="", classes=css_class,
                                          border=0))


def write_manifest(frame: pd.DataFrame, path: Union[str, Path]) -> Path:
    """Write suggestions as Parquet (.parquet/.pq) or CSV (.csv)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"path {str(path)!r}: use a .parquet or .csv file name")
    return path


CANDIDATE_COLUMNS = ["rank", "sample_id", "uri", "score", "region_id", "reason", "nearest_failure_id",
                     "distance", "slice", "predicted_label", "confidence"]


def candidates_frame(candidates) -> pd.DataFrame:
    return pd.DataFrame([{c: getattr(m, c) for c in CANDIDATE_COLUMNS} for m in candidates],
                        columns=CANDIDATE_COLUMNS)


@dataclass
class RunMap:
    """A 2-D map of a run's test embeddings for a sample of its rows.

    ``points`` has one row per drawn sample: x, y, sample_id, uri, failed,
    region (-1: none), label, predicted.
    """

    run_id: str
    diagnosis_id: str
    num_samples: int
    explained_variance: float
    points: pd.DataFrame
    num_not_diagnosed: int = 0      # rows logged after the diagnosis (failed = mispredicted, no region)
    projection: str = "pca"          # or "clustering_space"

    @classmethod
    def from_message(cls, m: pb.RunMap) -> "RunMap":
        xy = np.frombuffer(m.coordinates, dtype="<f4").reshape(-1, 2)
        points = pd.DataFrame({
            "x": xy[:, 0], "y": xy[:, 1], "sample_id": list(m.sample_ids), "uri": list(m.uris),
            "failed": np.asarray(m.failed, dtype=bool), "region": np.asarray(m.region_ids, dtype=np.int64),
            "label": np.asarray(m.labels, dtype=np.int64), "predicted": np.asarray(m.predicted, dtype=np.int64)})
        return cls(m.run_id, m.diagnosis_id, m.num_samples, m.explained_variance, points, m.num_not_diagnosed,
                   m.projection or "pca")
