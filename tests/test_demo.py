"""The main job: `blindspots demo` end to end on a temporary store."""
from __future__ import annotations

import pandas as pd

from blindspots_scenarios.demo import run_demo


def test_demo_finds_the_planted_regions_and_its_picks_fix_them(tmp_path, capsys):
    out = run_demo(output_dir=str(tmp_path), seed=0, quick=True)
    printed = capsys.readouterr().out
    # The three data gaps come back as regions (one of them explained by no metadata).
    assert min(out["recovery"][c] for c in ("north_cam_e", "luxury", "dark")) >= 0.7
    assert "explained by: camera=cam_e & region=north" in printed
    assert "no metadata slice explains it" in printed
    assert "[label_noise]" in printed
    picks = pd.read_parquet(out["manifest"])
    assert len(picks) == 600 and picks["reason"].str.startswith("near failure region").all()
    acc = out["accuracy"]
    assert acc["targeted"] > acc["random"] > acc["before"]
