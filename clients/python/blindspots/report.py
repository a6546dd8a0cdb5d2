"""One self-contained HTML report of a diagnosed run.

    from blindspots.report import write_report
    write_report(client, run.id, "report.html", suggestions=picks)

The file has no external references: CSS is inline, the map is an inline SVG,
and thumbnails are data URIs of the local PNG/JPEG files the samples' URIs
point to (file paths or file:// URIs; other URIs are listed, not fetched).
"""
from __future__ import annotations

import base64
import datetime as dt
from html import escape
from pathlib import Path
from typing import Optional, Union
from urllib.parse import unquote, urlparse

import pandas as pd

from ._report_map import FAILURE_COLOUR, OTHER_COLOUR, region_colour, svg_map
from ._report_comparison import comparison_section
from .comparison import Comparison
from .results import KIND_NAMES, Diagnosis, RunMap

MAX_IMAGE_BYTES = 2 << 20
IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2330;
       margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #e3e6ea; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.muted { color: #667085; } .num { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border-bottom: 1px solid #eceef1; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f6f7f9; font-weight: 600; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.legend span { margin-right: 16px; }
.map { display: block; border-radius: 4px; }
.region-label { font: bold 13px sans-serif; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin: 6px 0 12px; }
.thumb { width: 112px; font-size: 11px; color: #475467; }
.thumb img { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #d0d4da; display: block; }
.thumb .missing { width: 96px; height: 96px; border: 1px dashed #d0d4da; display: flex; align-items: center;
                  justify-content: center; color: #98a2b3; text-align: center; word-break: break-all; }
.kind { font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #eef2f6; }
"""


def write_report(client, run_id: str, path: Union[str, Path], suggestions: Optional[pd.DataFrame] = None, *,
                 diagnosis_id: str = "", max_points: int = 3000, max_thumbnails: int = 8,
                 compare_with: str = "", projection: str = "") -> Path:
    """Write the report of ``run_id``'s diagnosis (default: its latest) to ``path``;
    ``suggestions``: a frame from ``Run.suggest`` (or a manifest read back) to list
    with thumbnails; ``compare_with``: an earlier version's run on the same test set,
    for a section on what changed since (default: the previous version the diagnosis was
    compared with, if any); ``projection``: the map's, as in
    ``Client.get_run_map``. Returns the path written."""
    run = client.get_run(run_id)
    diagnosis = client.get_diagnosis(diagnosis_id=diagnosis_id, run_id="" if diagnosis_id else run_id)
    run_map = client.get_run_map(run_id, diagnosis_id=diagnosis.id, max_points=max_points, projection=projection)
    comparison = (client.compare(compare_with, run_id, diagnosis_id_b=diagnosis.id) if compare_with
                  else diagnosis.previous_version)
    html = render_report(run.message, diagnosis, run_map, suggestions, max_thumbnails=max_thumbnails,
                         comparison=comparison)
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return path


def render_report(run, diagnosis: Diagnosis, run_map: RunMap, suggestions: Optional[pd.DataFrame] = None,
                  max_thumbnails: int = 8, comparison: Optional[Comparison] = None) -> str:
    """The report as an HTML string (``run``: the API's Run message)."""
    d = diagnosis.message
    names = list(run.class_names)
    title = f"blindspots report: {run.name}"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="muted">run {escape(run.id)} · model {escape(run.model_name or "-")} '
            f'{escape(run.model_version)} · dataset {escape(run.dataset_name or "-")} · diagnosis {escape(d.id)} · '
            f"written {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
            _summary(d),
            _map_section(run_map, names),
            _regions_section(d, names, max_thumbnails),
            _unheld_section(d),
            _slices_section(d),
            _classes_section(d)]
    if comparison is not None:
        body.append(comparison_section(comparison))
    if suggestions is not None:
        body.append(_suggestions_section(suggestions, max_thumbnails))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------- sections
def _pct(x: float) -> str:
    return f"{x:.1%}"


def _ci(interval) -> str:
    return f"{interval.low:.0%}–{interval.high:.0%}"


def _summary(d) -> str:
    return (f"<p><b>{d.num_failures}</b> failures in <b>{d.num_samples}</b> test rows: error rate "
            f"<b>{_pct(d.baseline_error_rate)}</b> (95% CI {_pct(d.baseline_ci.low)}–{_pct(d.baseline_ci.high)}). "
            f"<b>{len(d.regions)}</b> failure regions significant of {d.num_regions_tested} tested; "
            f"{d.num_hypotheses_tested} hypotheses tested at false discovery rate {d.fdr_alpha:g}.</p>")


def _map_section(run_map: RunMap, names: list[str]) -> str:
    pts = run_map.points
    legend = [f'<span><i class="swatch" style="background:{OTHER_COLOUR}"></i>in no region</span>',
              f'<span><i class="swatch" style="background:#fff;border:2px solid {FAILURE_COLOUR}"></i>failure</span>']
    for r in sorted(int(v) for v in pts["region"].unique() if v >= 0):
        legend.append(f'<span><i class="swatch" style="background:{region_colour(r)}"></i>region {r}</span>')
    how = ("the space the failure clustering ran in (class directions removed), laid out as a spectral "
           "embedding of its nearest-neighbour graph: nearby points are neighbours there; axes have no units"
           if run_map.projection == "clustering_space" else
           f"PCA of the L2-normalised embeddings (the two axes keep {run_map.explained_variance:.0%} of the variance)")
    return (f'<h2>Map of the test embeddings</h2><p class="muted">{len(pts)} of {run_map.num_samples} rows; '
            f"{how}. Hover a point for its id, label and prediction.</p>" + _not_diagnosed(run_map) +
            f'<p class="legend">{"".join(legend)}</p>' + svg_map(pts, names))


def _not_diagnosed(run_map: RunMap) -> str:
    if not run_map.num_not_diagnosed:
        return ""
    return (f'<p class="muted">{run_map.num_not_diagnosed} of the rows were logged after this diagnosis, which did '
            "not see them: they are in no region and marked failed where mispredicted. Diagnose again to "
            "include them.</p>")


def _regions_section(d, names: list[str], max_thumbnails: int) -> str:
    if not d.regions:
        return "<h2>Failure regions</h2><p>No region's error rate is significantly above the baseline.</p>"
    head = ("<tr><th>region</th><th>kind</th><th class=num>failures / rows</th><th class=num>error rate (95% CI)"
            "</th><th class=num>lift</th><th class=num>excess errors</th><th class=num>q</th>"
            "<th>explained by</th><th>confusions (true → predicted)</th></tr>")
    rows, cards = [], []
    for r in d.regions:
        kind = KIND_NAMES.get(r.kind, "unspecified")
        expl = "<br>".join(f"{escape(e.name)} <span class=muted>(precision {e.precision:.2f}, recall "
                           f"{e.recall:.2f})</span>" for e in r.explanations[:2]) or '<span class="muted">—</span>'
        conf = "<br>".join(f"{escape(c.true_name)} → {escape(c.predicted_name)} ({c.count})"
                           for c in r.confusions[:3])
        rows.append(f'<tr><td><i class="swatch" style="background:{region_colour(r.id)}"></i>R{r.id}</td>'
                    f'<td><span class="kind">{kind}</span></td><td class=num>{r.failures} / {r.support}</td>'
                    f"<td class=num>{_pct(r.error_rate)} ({_ci(r.error_rate_ci)})</td>"
                    f"<td class=num>{r.lift:.1f}×</td><td class=num>{r.excess_errors:.0f}</td>"
                    f"<td class=num>{r.q_value:.2g}</td><td>{expl}</td><td>{conf}</td></tr>")
        thumbs = [_thumb(e.uri, f"{escape(e.sample_id)}<br>{escape(_conf_text(e, names))}") for e in
                  r.typical_failures[:max_thumbnails]]
        evidence = f'<p class="muted">{escape(r.evidence.summary)}</p>' if r.evidence.summary else ""
        cards.append(f"<h3>Region R{r.id}: typical failures</h3>{evidence}"
                     + (f'<div class="thumbs">{"".join(thumbs)}</div>' if thumbs else "<p class=muted>none</p>"))
    return ("<h2>Failure regions</h2><p class=muted>Ranked by excess errors; kind data_gap: collect more data "
            "like this, label_noise: relabel.</p>"
            f"<table>{head}{''.join(rows)}</table>" + "".join(cards))


def _conf_text(e, names: list[str]) -> str:
    def name(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)
    return f"{name(e.label)} → {name(e.predicted)} ({e.confidence:.2f})"


def _unheld_section(d) -> str:
    """Confusions among the failures no region holds (empty when there are none)."""
    if not d.unheld_confusions:
        return ""
    rows = "".join(f"<tr><td>{escape(c.true_name)} → {escape(c.predicted_name)}</td><td class=num>{c.failures}</td>"
                   f"<td class=num>{c.excess_errors:.0f}</td></tr>" for c in d.unheld_confusions)
    return ("<h2>Confusions outside every region</h2><p class=muted>Failures no region holds, by given label and "
            "prediction, where one pair stands out. Not tested like a region (a class-pair confusion often forms "
            "none); targeted suggestions collect near those not typed label noise.</p><table><tr><th>given → "
            f"predicted</th><th class=num>failures</th><th class=num>excess errors</th></tr>{rows}</table>")


def _slices_section(d) -> str:
    if not d.slices:
        return "<h2>High-error slices</h2><p class=muted>No metadata slice stands out.</p>"
    rows = "".join(f"<tr><td>{escape(s.name)}</td><td class=num>{s.failures} / {s.support}</td>"
                   f"<td class=num>{_pct(s.error_rate)} ({_ci(s.error_rate_ci)})</td>"
                   f"<td class=num>{s.lift:.1f}×</td><td class=num>{s.q_value:.2g}</td></tr>" for s in d.slices)
    return ("<h2>High-error slices over the whole test set</h2><table><tr><th>slice</th>"
            "<th class=num>failures / rows</th><th class=num>error rate (95% CI)</th><th class=num>lift</th>"
            f"<th class=num>q</th></tr>{rows}</table>")


def _classes_section(d, max_rows: int = 30) -> str:
    """Per class, worst first (empty for a diagnosis made before classes were kept)."""
    shown = [c for c in d.classes if c.support][:max_rows]
    if not shown:
        return ""
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td class=num>{c.failures} / {c.support}</td>"
        f"<td class=num>{_pct(c.error_rate)} ({_ci(c.error_rate_ci)})</td><td class=num>{c.q_value:.2g}</td>"
        f"<td class=num>{c.precision:.2f}</td><td class=num>{c.recall:.2f}</td><td class=num>{c.f1:.2f}</td>"
        f"<td>{escape(c.top_confusion_name)}{f' ({c.top_confusion_count}×)' if c.top_confusion >= 0 else ''}</td>"
        "</tr>" for c in shown)
    more = sum(1 for c in d.classes if c.support) - len(shown)
    return ("<h2>Classes</h2><p class=muted>Worst first, by errors beyond the test set's error rate; q is "
            "adjusted within the classes." + (f" {more} more not shown." if more > 0 else "") + "</p>"
            "<table><tr><th>class</th><th class=num>failures / rows</th><th class=num>error rate (95% CI)</th>"
            "<th class=num>q</th><th class=num>precision</th><th class=num>recall</th><th class=num>F1</th>"
            f"<th>mostly read as</th></tr>{rows}</table>")


def _suggestions_section(frame: pd.DataFrame, max_thumbnails: int, max_rows: int = 25) -> str:
    if len(frame) == 0:
        return "<h2>Suggested samples to label</h2><p class=muted>No candidates.</p>"
    top = frame.sort_values("rank").head(max_rows) if "rank" in frame else frame.head(max_rows)
    thumbs = [_thumb(str(row.get("uri", "")), f"#{row.get('rank', '')} {escape(str(row['sample_id']))}")
              for _, row in top.head(max_thumbnails).iterrows()]
    rows = "".join(
        f"<tr><td class=num>{row.get('rank', '')}</td><td>{escape(str(row['sample_id']))}</td>"
        f"<td class=num>{float(row.get('score', 0.0)):.3f}</td>"
        f"<td>{'R' + str(int(row['region_id'])) if int(row.get('region_id', -1)) >= 0 else '—'}</td>"
        f"<td>{escape(str(row.get('reason', '')))}</td></tr>" for _, row in top.iterrows())
    name = frame.attrs.get("suggestion_set", "")
    return (f"<h2>Suggested samples to label</h2><p class=muted>{len(frame)} candidates"
            + (f" (suggestion set {escape(name)})" if name else "") + f"; the top {len(top)}:</p>"
            + (f'<div class="thumbs">{"".join(thumbs)}</div>' if thumbs else "")
            + "<table><tr><th class=num>rank</th><th>sample</th><th class=num>score</th><th>region</th>"
            f"<th>reason</th></tr>{rows}</table>")


# ---------------------------------------------------------------- thumbnails
def _thumb(uri: str, caption_html: str) -> str:
    data = image_data_uri(uri)
    picture = (f'<img src="{data}" alt="{escape(uri)}">' if data
               else f'<div class="missing">{escape(_short(uri)) or "no image"}</div>')
    return f'<div class="thumb">{picture}{caption_html}</div>'


def _short(uri: str, n: int = 40) -> str:
    return uri if len(uri) <= n else "…" + uri[-n:]


def local_image_path(uri: str) -> Optional[Path]:
    """The local file a URI names (a path or a file:// URI), or None for other schemes."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:    # http:, s3:, synthetic: ... (one letter: a Windows drive)
        return None
    return Path(uri)


def image_data_uri(uri: str) -> Optional[str]:
    """A data URI of the PNG or JPEG file at ``uri``, or None when it is not a
    readable local image (the bytes are embedded as they are, not decoded)."""
    path = local_image_path(uri)
    try:
        if path is None or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    for magic, mime in IMAGE_TYPES:
        if data.startswith(magic):
            return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return None
