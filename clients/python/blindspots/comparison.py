"""Two model versions compared on the same test set (``Client.compare``)."""
from __future__ import annotations

import pandas as pd

from .results import KIND_NAMES, html_headline, html_table
from .v1 import blindspots_pb2 as pb

RATE_COLUMNS = ["support", "failures_a", "failures_b", "error_rate_a", "error_rate_b", "difference", "diff_low",
                "diff_high", "p_value"]


def _rate(c: pb.RateChange) -> dict:
    return {"support": c.support, "failures_a": c.failures_a, "failures_b": c.failures_b,
            "error_rate_a": c.error_rate_a, "error_rate_b": c.error_rate_b, "difference": c.difference,
            "diff_low": c.difference_ci.low, "diff_high": c.difference_ci.high, "p_value": c.p_value}


class Comparison:
    """What changed from version A to version B. ``message`` is the API's RunComparison.

    Regions of A are *fixed* (no region of B overlaps them and B's error rate on
    their rows is significantly lower), *remain*, or regions of B are *new*.
    Differences are B - A on the same rows, with McNemar's exact mid-p test and
    Newcombe's 95% interval for paired proportions.
    """

    def __init__(self, message: pb.RunComparison):
        self.message = message

    def regions_frame(self) -> pd.DataFrame:
        """One row per region: status, ids in A and B, overlap, slices, error rates."""
        rows = [{"status": r.status, "region_a": r.region_a, "region_b": r.region_b, "jaccard": r.jaccard,
                 "slice_a": r.slice_a, "slice_b": r.slice_b,
                 "kind": KIND_NAMES.get(r.kind_a if r.region_a >= 0 else r.kind_b, "unspecified"),
                 **_rate(r.rows), "q_value": r.q_value} for r in self.message.regions]
        return pd.DataFrame(rows, columns=["status", "region_a", "region_b", "jaccard", "slice_a", "slice_b",
                                           "kind", *RATE_COLUMNS, "q_value"])

    def slices_frame(self) -> pd.DataFrame:
        """One row per slice either diagnosis named, largest improvement first."""
        return _changes_frame("slice", self.message.slices)

    def classes_frame(self) -> pd.DataFrame:
        """One row per class (the shared rows both runs give its label), largest improvement first;
        empty for a comparison made before classes were compared."""
        return _changes_frame("class", self.message.classes)

    def regressions(self, alpha: float = 0.0) -> pd.DataFrame:
        """What got significantly worse from A to B: a gate for a training pipeline.

        One row per finding (``scope`` overall, region, slice or class; ``name``), worst first: the
        overall error rate if B's is higher with p <= alpha; each region (of either version,
        on the rows it is measured on) whose error rate rose with its q-value (Benjamini-Hochberg
        over the compared regions) <= alpha; each slice whose rate rose with its q-value (BH
        over the compared slices and classes) <= alpha; each class likewise. ``alpha`` 0
        takes the comparison's own (0.05 unless
        set). Empty when nothing got worse."""
        alpha = alpha or self.message.alpha or 0.05
        m = self.message
        rows = []
        if m.overall.difference > 0 and m.overall.p_value <= alpha:
            rows.append({"scope": "overall", "name": "all shared rows", **_rate(m.overall),
                         "q_value": m.overall.p_value})
        for r in m.regions:
            if r.rows.difference > 0 and r.q_value <= alpha:
                name = f"A:R{r.region_a}" if r.region_a >= 0 else f"B:R{r.region_b}"
                where = r.slice_a or r.slice_b
                rows.append({"scope": "region", "name": f"{name} ({where})" if where else name,
                             **_rate(r.rows), "q_value": r.q_value})
        for scope, changes in (("slice", m.slices), ("class", m.classes)):
            rows += [{"scope": scope, "name": s.name, **_rate(s.rows), "q_value": s.q_value} for s in changes
                     if s.rows.difference > 0 and s.q_value <= alpha]
        frame = pd.DataFrame(rows, columns=["scope", "name", *RATE_COLUMNS, "q_value"])
        return frame.sort_values("difference", ascending=False, kind="stable").reset_index(drop=True)

    def status_counts(self) -> dict[str, int]:
        out = {"fixed": 0, "remains": 0, "new": 0}
        for r in self.message.regions:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def _headline(self) -> list[str]:
        """The first lines of :meth:`summary` (and of the notebook display): error rates and region counts."""
        m = self.message
        o = m.overall
        a, b = m.model_version_a or m.run_id_a, m.model_version_b or m.run_id_b
        counts = self.status_counts()
        return [f"{a} -> {b} on {m.num_shared} shared test rows ({m.num_only_a} only in A, {m.num_only_b} only "
                f"in B): error rate {o.error_rate_a:.1%} -> {o.error_rate_b:.1%} ({o.difference:+.1%}, 95% CI "
                f"{o.difference_ci.low:+.1%} to {o.difference_ci.high:+.1%}, p={o.p_value:.2g})",
                f"failure regions: {counts['fixed']} fixed, {counts['remains']} remain, {counts['new']} new"]

    def summary(self, max_slices: int = 8) -> str:
        m = self.message
        lines = self._headline()
        for r in m.regions:
            name = f"A:R{r.region_a}" if r.region_a >= 0 else f"B:R{r.region_b}"
            where = r.slice_a or r.slice_b or "no metadata slice"
            match = f" = B:R{r.region_b} (overlap {r.jaccard:.2f})" if r.region_a >= 0 and r.region_b >= 0 else ""
            lines.append(f"  [{r.status:>7}] {name}{match} ({where}): {r.rows.error_rate_a:.0%} -> "
                         f"{r.rows.error_rate_b:.0%} on {r.rows.support} rows (p={r.rows.p_value:.2g})")

        def change(name: str, s) -> str:
            return (f"  {name}: {s['error_rate_a']:.0%} -> {s['error_rate_b']:.0%} of {s['support']} "
                    f"({s['difference']:+.0%}, CI {s['diff_low']:+.0%} to {s['diff_high']:+.0%}, q={s['q_value']:.2g})")
        if m.slices:
            lines.append("slices (B - A on the same rows):")
            lines += [change(s["slice"], s) for _, s in self.slices_frame().head(max_slices).iterrows()]
        worse = self.regressions()
        worse = worse[worse.scope == "class"]
        if len(worse):
            lines.append("classes significantly worse (B - A on the same rows):")
            lines += [change(s["name"], s) for _, s in worse.head(max_slices).iterrows()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Comparison({self.message.run_id_a!r} -> {self.message.run_id_b!r}, {self.status_counts()})"

    def _repr_html_(self, max_rows: int = 20) -> str:
        """How a notebook shows it: the headline, what got significantly worse, the regions (fixed,
        remaining, new) and the slices with the largest improvement first, as tables; escaped."""
        regions = self.regions_frame()[["status", "region_a", "region_b", "slice_a", "slice_b", "support",
                                        "error_rate_a", "error_rate_b", "difference", "q_value"]]
        slices = self.slices_frame()[["slice", "support", "error_rate_a", "error_rate_b", "difference",
                                      "diff_low", "diff_high", "q_value"]]
        worse = self.regressions()[["scope", "name", "support", "error_rate_a", "error_rate_b", "difference",
                                    "q_value"]]
        return "\n".join([
            html_headline("blindspots-comparison", self._headline()),
            html_table("Significantly worse", worse, max_rows, "blindspots-regressions")
            or "<p>Nothing significantly worse.</p>",
            html_table("Failure regions", regions, max_rows, "blindspots-regions"),
            html_table("Slices (B - A on the same rows)", slices, max_rows, "blindspots-slices"),
            html_table("Classes (B - A on the same rows)", self.classes_frame()[
                ["class", "support", "error_rate_a", "error_rate_b", "difference", "diff_low", "diff_high", "q_value"]],
                max_rows, "blindspots-classes"),
            "</div>"])


def _changes_frame(column: str, changes) -> pd.DataFrame:
    """One row per SliceComparison (a slice or a class, named in ``column``), largest improvement first."""
    rows = [{column: s.name, **_rate(s.rows), "q_value": s.q_value} for s in changes]
    frame = pd.DataFrame(rows, columns=[column, *RATE_COLUMNS, "q_value"])
    return frame.sort_values("difference", kind="stable").reset_index(drop=True)
