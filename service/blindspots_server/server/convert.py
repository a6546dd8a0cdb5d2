"""Translate between catalog records / core results and API messages."""
from __future__ import annotations

import math
from typing import Any, Optional

from google.protobuf.timestamp_pb2 import Timestamp

from blindspots.v1 import blindspots_pb2 as pb

from ..core import results as core
from ..storage import JobRecord, PoolRecord, RunRecord, SuggestionSetRecord

_TYPES = {"string": pb.COLUMN_TYPE_STRING, "number": pb.COLUMN_TYPE_NUMBER,
          "timestamp": pb.COLUMN_TYPE_TIMESTAMP}
_KINDS = {"data_gap": pb.DATA_GAP, "label_noise": pb.LABEL_NOISE, "mixed": pb.MIXED}
KIND_NAMES = {v: k for k, v in _KINDS.items()}


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _schema(schema: dict[str, str]) -> list[pb.ColumnSchema]:
    return [pb.ColumnSchema(name=k, type=_TYPES[v]) for k, v in sorted(schema.items())]


def _with_last_used(message, last_used: Optional[float]):
    """``message`` (a Run or Pool) with ``last_used_at`` set when it is known."""
    if last_used is not None:
        message.last_used_at.CopyFrom(timestamp(last_used))
    return message


def run_message(r: RunRecord, stored_bytes: int = 0, last_used: Optional[float] = None) -> pb.Run:
    message = pb.Run(id=r.id, name=r.name, project=r.project, model_name=r.model_name,
                     model_version=r.model_version, dataset_name=r.dataset_name,
                     class_names=r.class_names, embedding_dim=r.embedding_dim, num_rows=r.num_rows,
                     created_at=timestamp(r.created_at), metadata_schema=_schema(r.metadata_schema),
                     stored_bytes=stored_bytes)
    return _with_last_used(message, last_used)


def pool_message(p: PoolRecord, stored_bytes: int = 0, last_used: Optional[float] = None) -> pb.Pool:
    message = pb.Pool(id=p.id, name=p.name, project=p.project, embedding_dim=p.embedding_dim,
                      num_classes=p.num_classes, num_rows=p.num_rows, created_at=timestamp(p.created_at),
                      metadata_schema=_schema(p.metadata_schema),
                      index=pb.PoolIndexInfo(kind=p.index_kind, num_indexed=p.index_rows,
                                             description=p.index_description), stored_bytes=stored_bytes)
    return _with_last_used(message, last_used)


def job_message(j: JobRecord) -> pb.Job:
    return pb.Job(id=j.id, kind=j.kind, state=pb.Job.State.Value(j.state), fraction_done=j.fraction_done,
                  stage=j.stage, result_id=j.result_id, error=j.error, run_id=j.run_id, pool_id=j.pool_id,
                  created_at=timestamp(j.created_at), updated_at=timestamp(j.updated_at),
                  started_at=timestamp(j.started_at) if j.started_at else None)


def suggestion_set_message(s: SuggestionSetRecord) -> pb.SuggestionSet:
    return pb.SuggestionSet(id=s.id, run_id=s.run_id, pool_id=s.pool_id, diagnosis_id=s.diagnosis_id,
                            strategy=s.strategy, budget=s.budget, num_candidates=s.num_candidates,
                            created_at=timestamp(s.created_at), name=s.name, request_id=s.request_id)


# ------------------------------------------------------------------ diagnosis

_PARAM_FIELDS = ("failure_definition", "top_loss_quantile", "min_cluster_size", "min_samples",
                 "reduce_to", "max_regions", "fdr_alpha", "max_slice_predicates", "min_slice_support",
                 "sliceline_alpha", "top_slices", "quantile_bins", "seed")


def diagnoser_kwargs(params: pb.DiagnosisParams) -> dict[str, Any]:
    """Only the fields the caller set (0 / empty = default scaled to the data)."""
    out: dict[str, Any] = {}
    for name in _PARAM_FIELDS:
        value = getattr(params, name)
        if value:
            out[name] = value
    return out


def params_message(used: dict[str, Any]) -> pb.DiagnosisParams:
    msg = pb.DiagnosisParams()
    for name in _PARAM_FIELDS:
        value = used.get(name)
        if value is not None:
            setattr(msg, name, type(getattr(msg, name))(value))
    return msg


_MEASURED_PAIRS = (("failure_label_agreement", "failure_label_chance"),
                   ("failure_neighbour_failures", "prediction_failure_rate"))


def _typing_tests(ev) -> dict:
    """The typing tests' numbers, each pair only where it was measured (absent otherwise)."""
    out = {}
    for pair in _MEASURED_PAIRS:
        values = [getattr(ev, name) for name in pair]
        if all(math.isfinite(v) for v in values):
            out.update({name: float(v) for name, v in zip(pair, values)})
    return out


def _f(x: float) -> float:
    return float(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else 0.0


def _interval(i: core.Interval) -> pb.Interval:
    return pb.Interval(low=_f(i.low), high=_f(i.high))


_BOUNDED_OPS = ("range", "time_range")      # predicates whose low / high carry the bounds


def predicate_message(p: core.Predicate) -> pb.Predicate:
    bounded = p.op in _BOUNDED_OPS
    return pb.Predicate(column=p.column, op=p.op, value=p.value,
                        low=p.low if math.isfinite(p.low) else (-math.inf if bounded else 0.0),
                        high=p.high if math.isfinite(p.high) else (math.inf if bounded else 0.0),
                        text=p.text)


def predicate_from_message(m: pb.Predicate) -> core.Predicate:
    if m.op in _BOUNDED_OPS:
        return core.Predicate(m.column, m.op, m.value, m.low, m.high)
    return core.Predicate(m.column, m.op, m.value)


def slice_message(s: core.SliceStat) -> pb.Slice:
    return pb.Slice(name=s.name, predicates=[predicate_message(p) for p in s.predicates],
                    support=int(s.support), failures=int(s.failures), error_rate=_f(s.error_rate),
                    error_rate_ci=_interval(s.ci), lift=_f(s.lift), p_value=_f(s.p_value),
                    q_value=_f(s.q_value), score=_f(s.score), precision=_f(s.precision),
                    recall=_f(s.recall), f1=_f(s.f1))


def diagnosis_message(result: core.DiagnosisResult, diagnosis_id: str, run: RunRecord, job_id: str,
                      created_at: float) -> pb.Diagnosis:
    names = run.class_names

    def name_of(i: int) -> str:
        return names[i] if 0 <= i < len(names) else str(i)

    regions = []
    for r in result.regions:
        ev = r.evidence
        regions.append(pb.Region(
            id=int(r.region_id), support=int(r.support), failures=int(r.failures),
            error_rate=_f(r.error_rate), error_rate_ci=_interval(r.ci), lift=_f(r.lift),
            excess_errors=_f(r.excess_errors), p_value=_f(r.p_value), q_value=_f(r.q_value),
            explanations=[slice_message(s) for s in r.explanations],
            confusions=[pb.Confusion(true_label=c.true_label, predicted_label=c.predicted_label,
                                     count=c.count, true_name=name_of(c.true_label),
                                     predicted_name=name_of(c.predicted_label)) for c in r.confusions],
            typical_failures=[pb.Example(sample_id=str(e.sample_id), uri=str(e.uri), label=int(e.label),
                                         predicted=int(e.predicted), confidence=_f(e.confidence),
                                         failed=bool(e.failed)) for e in r.typical_failures],
            mean_failure_confidence=_f(r.mean_failure_confidence),
            kind=_KINDS.get(r.kind, pb.REGION_KIND_UNSPECIFIED),
            evidence=(pb.RegionEvidence(
                mean_failure_confidence=_f(ev.mean_failure_confidence),
                neighbour_agreement_with_prediction=_f(ev.neighbour_agreement_with_prediction),
                neighbour_agreement_with_label=_f(ev.neighbour_agreement_with_label),
                relative_density=_f(ev.relative_density), summary=ev.summary,
                **_typing_tests(ev)) if ev else None),
        ))
    return pb.Diagnosis(
        id=diagnosis_id, run_id=run.id, created_at=timestamp(created_at),
        num_samples=int(result.num_samples), num_failures=int(result.num_failures),
        baseline_error_rate=_f(result.baseline_error_rate), baseline_ci=_interval(result.baseline_ci),
        regions=regions, slices=[slice_message(s) for s in result.slices],
        num_hypotheses_tested=int(result.num_hypotheses_tested), fdr_alpha=_f(result.fdr_alpha),
        params=params_message(result.params), num_regions_tested=int(result.num_regions_tested),
        job_id=job_id,
        unheld_confusions=[pb.UnheldConfusion(true_label=c.given, predicted_label=c.predicted,
                                              failures=len(c.rows), excess_errors=_f(c.excess_errors),
                                              true_name=name_of(c.given), predicted_name=name_of(c.predicted))
                           for c in result.unheld_confusions],
        classes=[pb.ClassStat(label=c.label, name=name_of(c.label), support=c.support, failures=c.failures,
                              error_rate=_f(c.error_rate), error_rate_ci=_interval(c.ci), lift=_f(c.lift),
                              excess_errors=_f(c.excess_errors), p_value=_f(c.p_value), q_value=_f(c.q_value),
                              predicted=c.predicted, precision=_f(c.precision), recall=_f(c.recall), f1=_f(c.f1),
                              top_confusion=c.top_confusion,
                              top_confusion_name=name_of(c.top_confusion) if c.top_confusion >= 0 else "",
                              top_confusion_count=c.top_confusion_count)
                 for c in result.classes])
