"""The checked-in generated code must be what `make proto` produces now."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "clients" / "python" / "blindspots" / "v1"


def test_generated_code_is_fresh(tmp_path):
    protos = sorted((ROOT / "protos").rglob("*.proto"))
    assert protos, "no .proto files found"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"),
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                    *[str(p.relative_to(ROOT / "protos")) for p in protos]], check=True, cwd=ROOT / "protos")
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "blindspots" / "v1").iterdir() if p.is_file()}
    checked_in = {p.name: p.read_bytes() for p in GENERATED.iterdir()
                  if p.is_file() and p.name != "__init__.py"}
    assert fresh.keys() == checked_in.keys(), "run `make proto`: generated files differ"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"run `make proto`: {stale} are stale"
