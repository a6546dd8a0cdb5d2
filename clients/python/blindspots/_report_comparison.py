"""The report's section on what changed since an earlier model version."""
from __future__ import annotations

from html import escape

from .comparison import Comparison

STATUS_COLOURS = {"fixed": "#2ca02c", "remains": "#ff7f0e", "new": "#d62728"}


def _rate(a: float, b: float) -> str:
    return f"{a:.0%} → {b:.0%}"


def _diff(c) -> str:
    return (f"{c.difference:+.1%} <span class=muted>({c.difference_ci.low:+.1%} to {c.difference_ci.high:+.1%}, "
            f"p={c.p_value:.2g})</span>")


def comparison_section(comparison: Comparison, max_slices: int = 12) -> str:
    """HTML: overall change, region statuses, slices' and classes' error rates under both versions."""
    m = comparison.message
    a, b = escape(m.model_version_a or m.run_id_a), escape(m.model_version_b or m.run_id_b)
    counts = comparison.status_counts()
    rows = []
    for r in m.regions:
        name = f"A:R{r.region_a}" if r.region_a >= 0 else f"B:R{r.region_b}"
        match = f" = B:R{r.region_b} <span class=muted>(overlap {r.jaccard:.2f})</span>" if (
            r.region_a >= 0 and r.region_b >= 0) else ""
        colour = STATUS_COLOURS.get(r.status, "#667085")
        rows.append(f'<tr><td><span class="kind" style="background:{colour};color:#fff">{escape(r.status)}</span></td>'
                    f"<td>{name}{match}</td><td>{escape(r.slice_a or r.slice_b) or '<span class=muted>—</span>'}</td>"
                    f"<td class=num>{r.rows.support}</td>"
                    f"<td class=num>{_rate(r.rows.error_rate_a, r.rows.error_rate_b)}</td>"
                    f"<td class=num>{_diff(r.rows)}</td></tr>")
    slice_rows = _change_rows(m.slices, comparison.slices_frame()["slice"].head(max_slices))
    # Classes worst first (the largest rise), where the slices show the largest improvement first.
    class_rows = _change_rows(m.classes, comparison.classes_frame()["class"][::-1].head(max_slices))
    o = m.overall
    return (f"<h2>Compared with {a}</h2>"
            f"<p>On {m.num_shared} test rows both versions were evaluated on, the error rate went "
            f"<b>{_rate(o.error_rate_a, o.error_rate_b)}</b> ({_diff(o)}). Failure regions: "
            f"<b>{counts['fixed']}</b> fixed, <b>{counts['remains']}</b> remain, <b>{counts['new']}</b> new "
            f"({a} → {b}). Differences are {b} − {a} on the same rows: McNemar's test, 95% Newcombe "
            "interval for paired proportions.</p>"
            "<table><tr><th>status</th><th>region</th><th>slice</th><th class=num>rows</th>"
            f"<th class=num>error rate {a} → {b}</th><th class=num>difference</th></tr>{''.join(rows)}</table>"
            + (f"<h3>Slices, {a} → {b}</h3><table><tr><th>slice</th><th class=num>rows</th>"
               "<th class=num>error rate</th><th class=num>difference</th><th class=num>q</th></tr>"
               f"{slice_rows}</table>" if slice_rows else "")
            + (f"<h3>Classes, {a} → {b}</h3><table><tr><th>class</th><th class=num>rows</th>"
               "<th class=num>error rate</th><th class=num>difference</th><th class=num>q</th></tr>"
               f"{class_rows}</table>" if class_rows else ""))


def _change_rows(changes, names) -> str:
    """Table rows of the SliceComparisons ``changes`` named ``names``, in that order."""
    by_name = {c.name: c for c in changes}
    return "".join(
        f"<tr><td>{escape(name)}</td><td class=num>{by_name[name].rows.support}</td>"
        f"<td class=num>{_rate(by_name[name].rows.error_rate_a, by_name[name].rows.error_rate_b)}</td>"
        f"<td class=num>{_diff(by_name[name].rows)}</td><td class=num>{by_name[name].q_value:.2g}</td></tr>"
        for name in names)
