"""examples/train_and_improve.py end to end with small sizes (it starts its own server)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_and_improve.py"


def test_the_loop_improves_the_failing_slices(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_and_improve", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    report = tmp_path / "report.html"
    out = example.main(["--n-train", "1500", "--n-test", "1500", "--n-pool", "3000", "--budget", "250",
                        "--epochs", "12", "--report", str(report)])
    printed = capsys.readouterr().out
    assert "model v1: test accuracy" in printed and "model v2 (+250 labeled rows)" in printed
    assert out["labeled"] == 250 and out["regions_v1"] >= 1
    assert out["after"]["failing_slices"] > out["before"]["failing_slices"] + 0.1
    assert out["after"]["overall"] > out["before"]["overall"]
    assert report.exists() and "<svg" in report.read_text()
