"""Does the Diagnoser tell label noise from data gaps? Region typing vs the truth.

A region's truth is known where the scenario knows each test row's true label:
a region is label noise when most of its failures carry a wrong given label.
Every family of the active-learning bench that has test rows with wrong labels
or confidently wrong regions is run (the listings world and its variants, the
suite's families), with three typing rules side by side on the same diagnosis
inputs:

- ``neighbours``: the failures' neighbours take the prediction's side and the
  model is confident (the rule before the label test);
- ``label test``: the same, and the failures' given labels are
  spread over the classes and no more predictable from their fellow failures
  than chance (``region_typing.LABEL_LIFT_MAX`` and ``LABEL_CONCENTRATION_MAX``,
  chosen on the dev half with ``--grid``);
- ``label test + failure lift`` (the default): with two classes, where the label
  test cannot look, the failures' neighbours also fail no more often than rows of
  their prediction (``region_typing.FAILURE_LIFT_MAX``, chosen on the dev half).

    .venv/bin/python bench/region_typing.py --split dev --draws 3 --grid
    .venv/bin/python bench/region_typing.py --split dev --suite cancer_drift --kinds none --draws 24 --grid
    .venv/bin/python bench/region_typing.py --split heldout --draws 5

Prints, per rule: regions typed label noise that are (precision), label-noise
regions typed so (recall), their F1, and data-gap regions typed label noise.
"""
from __future__ import annotations

import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import active_learning as al  # noqa: E402
from measure import write_fragment  # noqa: E402
from blindspots_server.core import region_typing  # noqa: E402
from blindspots_server.core.diagnosis import Diagnoser  # noqa: E402

# name: (LABEL_LIFT_MAX, LABEL_CONCENTRATION_MAX, FAILURE_LIFT_MAX); None: that test off.
_KNOBS = ("LABEL_LIFT_MAX", "LABEL_CONCENTRATION_MAX", "FAILURE_LIFT_MAX")
DEFAULT_RULE = tuple(getattr(region_typing, k) for k in _KNOBS)
RULES = {"neighbours": (None, 1.0, None), "label test": (*DEFAULT_RULE[:2], None),
         "label test + failure lift": DEFAULT_RULE}
GRID = {**{f"lift {a}, concentration {c}": (a, c, None) for a in (0.0, 0.05, 0.1) for c in (0.5, 0.7, 0.9)},
        **{f"label test, failure lift {b}": (*DEFAULT_RULE[:2], b) for b in (0.1, 0.15, 0.25, 0.3)}}


def typed_regions(f, rule: tuple) -> list[tuple[str, float]]:
    """(kind, share of failures with a wrong given label) per region of one family."""
    model = f.trained or f.fit(f.train.x, f.train.y, f.seed)
    emb, probs = model.embed(f.test.x), model.predict_proba(f.test.x)
    saved = tuple(getattr(region_typing, k) for k in _KNOBS)
    for k, v in zip(_KNOBS, rule):
        setattr(region_typing, k, v)
    try:
        res = Diagnoser().fit(emb, f.test.y, probs, f.test.meta, f.test.ids)
    finally:
        for k, v in zip(_KNOBS, saved):
            setattr(region_typing, k, v)
    out = []
    for rank, r in enumerate(res.regions):
        rows = np.flatnonzero((res.region_of_sample == rank) & res.failed)
        out.append((r.kind, float(np.mean(f.test.y[rows] != f.test.y_true[rows])) if len(rows) else 0.0))
    return out


def scores(typed: list[tuple[str, float]]) -> dict[str, float]:
    noise = np.array([share > 0.5 for _, share in typed])
    said = np.array([kind == region_typing.LABEL_NOISE for kind, _ in typed])
    tp = int((noise & said).sum())
    precision = tp / said.sum() if said.any() else float("nan")
    recall = tp / noise.sum() if noise.any() else float("nan")
    return {"regions": len(typed), "label noise": int(noise.sum()), "typed label noise": int(said.sum()),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
            "data gaps typed label noise": int((said & ~noise).sum())}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(al.SPLITS), default="heldout")
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--kinds", nargs="+", default=["base", "confident_errors", "noisy_test"])
    parser.add_argument("--suite", nargs="*", default=None, help="suite families (default: the split's all)")
    parser.add_argument("--grid", action="store_true", help="also the grid the default was chosen from (dev)")
    args = parser.parse_args(argv)
    rules = {**RULES, **(GRID if args.grid else {})}
    import torch

    torch.set_num_threads(1)
    draws = args.draws or al.SPLITS[args.split]["draws"]
    typed: dict[str, list] = {name: [] for name in rules}
    per_family: dict[tuple[str, str], list] = {}
    for draw in range(draws):
        for f in al.families(args.split, draw, args.kinds, al.default_suite(args.split) if args.suite is None else args.suite):
            for name, rule in rules.items():
                t = typed_regions(f, rule)
                typed[name] += t
                per_family.setdefault((f.name, name), []).extend(t)
            print(f"{f.name} seed {f.seed}", file=sys.stderr, flush=True)
    lines = [f"Region typing vs the truth, {args.split} split, {draws} seeds per family "
             f"(a region is label noise when most of its failures carry a wrong given label).", "",
             "| rule | regions | label noise | typed label noise | precision | recall | F1 | data gaps typed label noise |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in typed.items():
        s = scores(t)
        lines.append(f"| {name} | {s['regions']} | {s['label noise']} | {s['typed label noise']} | "
                     f"{s['precision']:.2f} | {s['recall']:.2f} | {s['f1']:.2f} | {s['data gaps typed label noise']} |")
    lines += ["", "Per family (data gaps typed label noise / label-noise regions found of all), " + " → ".join(RULES) + ":", ""]
    for fam in dict.fromkeys(k[0] for k in per_family):
        parts = []
        for name in RULES:
            s = scores(per_family[(fam, name)])
            parts.append(f"{s['data gaps typed label noise']} / {s['typed label noise'] - s['data gaps typed label noise']}"
                         f" of {s['label noise']}")
        lines.append(f"- {fam}: " + " → ".join(parts))
    text = "\n".join(lines)
    if not args.grid and args.suite is None:
        write_fragment("region_typing" if args.split == "heldout" else f"region_typing_{args.split}", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
