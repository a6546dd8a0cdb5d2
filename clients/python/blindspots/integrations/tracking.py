"""What experiment trackers (MLflow, Weights & Biases) get from a diagnosis: its headline numbers
and its findings as files."""
from __future__ import annotations

import json

from google.protobuf import json_format

from ..results import Diagnosis
from ..v1 import blindspots_pb2 as pb


def headline_numbers(diagnosis: Diagnosis) -> dict[str, float]:
    """``error_rate``, ``failures``, ``regions``, ``label_noise_regions``, ``failures_in_regions``
    (share of the failures that some region holds), ``worst_region_error_rate`` and
    ``worst_region_lift`` (0 without regions); with a previous version of the model to compare with,
    ``version_regressions`` (findings significantly worse, as ``--fail-on-regression`` counts them)
    and ``error_rate_change``."""
    m = diagnosis.message
    regions = list(m.regions)
    held = sum(r.failures for r in regions)
    numbers = {
        "error_rate": m.baseline_error_rate, "failures": m.num_failures, "regions": len(regions),
        "label_noise_regions": sum(r.kind == pb.LABEL_NOISE for r in regions),
        "failures_in_regions": held / m.num_failures if m.num_failures else 0.0,
        "worst_region_error_rate": max((r.error_rate for r in regions), default=0.0),
        "worst_region_lift": max((r.lift for r in regions), default=0.0)}
    previous = diagnosis.previous_version
    if previous is not None:
        numbers["version_regressions"] = len(previous.regressions())
        numbers["error_rate_change"] = previous.message.overall.difference
    return {name: float(value) for name, value in numbers.items()}


def diagnosis_files(diagnosis: Diagnosis) -> dict[str, str]:
    """The findings as text files, by name: ``summary.txt``, ``regions.csv``, ``slices.csv`` and
    ``diagnosis.json`` (the Diagnosis message in protobuf's JSON mapping)."""
    as_json = json_format.MessageToDict(diagnosis.message, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    return {"summary.txt": diagnosis.summary(), "regions.csv": diagnosis.to_frame().to_csv(index=False),
            "slices.csv": diagnosis.slices_frame().to_csv(index=False),
            "diagnosis.json": json.dumps(as_json, indent=2)}
