"""The `blindspots` command line.

    blindspots serve [--data-dir DIR] [--port N] [--metrics-port N]
    blindspots serve --store postgresql://USER@HOST/DB --files SHARED_DIR_OR_URI   (several replicas)
    blindspots serve ... --ray-address auto     (heavy steps on a Ray cluster)
    blindspots store check [--data-dir DIR | --store postgresql://... --files ROOT]
    blindspots store recover [--data-dir DIR];  blindspots store backup DEST [--data-dir DIR | --store ... --files ROOT]
    blindspots store copy DEST [--to-files ROOT] [--project P] [--data-dir DIR | --store postgresql://... --files ROOT]
    blindspots demo [--output-dir DIR]
    blindspots info [--json]          (the server's version, store, compute and limits; what your token may do)
    blindspots runs [--project P] [--json]
    blindspots pools [--project P] [--json]
    blindspots diagnose RUN [--min-cluster-size N ...] [--fail-on-regression] [--json]   (exit 3: worse than the previous version)
    blindspots suggest RUN --pool POOL --budget N -o FILE [--strategy S] [--format label-studio|coco|csv]
    blindspots suggestions list [--run RUN] [--pool POOL] [--json]
    blindspots jobs list [--state S ...] [--kind K] [--run RUN] [--pool POOL] [--project P] [--limit N] [--json]
    blindspots jobs watch JOB          (follow a job to its end; exit 1 unless it succeeded)
    blindspots jobs cancel JOB [JOB ...]
    blindspots suggestions get SET -o FILE [--format label-studio|coco|csv]   (or --run R / --pool P: the newest set)
    blindspots suggestions delete SET [SET ...] [--missing-ok]   (a round that will not be labeled: picks released)
    blindspots labels import EXPORT.json --pool POOL [-o labels.parquet]
    blindspots labels export --pool POOL -o labels.parquet
    blindspots relabel RUN -o tasks.json
    blindspots compare RUN_A RUN_B [-o regions.csv] [--fail-on-regression] [--json]   (exit 3: B got worse)
    blindspots report RUN -o report.html [--suggestions FILE | --suggestion-set SET] [--diagnosis ID]
    blindspots region-members RUN --region N -o FILE [--diagnosis ID]
    blindspots delete run RUN [RUN ...] [--missing-ok] [--force];  blindspots delete pool POOL [POOL ...]
    blindspots prune --keep N [--project P] [--model M] [--older-than-days D] [--dry-run]

Client commands read the server address from --address or BLINDSPOTS_ADDRESS,
a token from --token or BLINDSPOTS_TOKEN, a CA file from --ca or BLINDSPOTS_CA.
`serve`, `store` and `demo` need the server package (blindspots-server) installed.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from .errors import BlindspotsError

# Exit codes: 0 done, 1 a server error, 2 bad arguments (argparse's too), 3 `compare
# --fail-on-regression` found B significantly worse (a pipeline gate), or `diagnose
# --fail-on-regression` found the run worse than the previous version of its model;
# 130 interrupted, 141 stdout closed by its reader.
REGRESSED = 3
INTERRUPTED = 130      # Ctrl-C, as shells report SIGINT
BROKEN_PIPE = 141      # stdout's reader closed it, as shells report SIGPIPE


def _client(args):
    from .client import Client
    return Client(args.address, token=args.token or None, root_certificates=args.ca or None)


def _cmd_serve(args) -> int:
    try:
        from blindspots_server.config import ServerConfig
        from blindspots_server.server.app import serve
    except ImportError:
        print("`blindspots serve` needs the server package: pip install blindspots-server", file=sys.stderr)
        return 2
    from blindspots_server.storage import StoreUnavailable, StoreUnusable
    overrides = {k: getattr(args, k) for k in ("data_dir", "store", "files", "ray_address", "ray_shard_gpus", "ray_shard_threads",
                                               "index_shards",
                                               "index_memory_mb", "shard_memory_mb", "job_retention_days",
                                               "run_retention_days", "pool_retention_days", "host", "port", "metrics_port",
                                               "otlp_endpoint", "auth_tokens_file", "tls_cert", "tls_key")}
    try:
        serve(ServerConfig.from_env(**overrides))
    except (StoreUnusable, StoreUnavailable, ValueError) as exc:   # ValueError: a bad --store/--files/--ray-address
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_store(args) -> int:
    """Maintenance of a store: `check` an embedded data directory or a PostgreSQL store (no
    server needed); `recover` an embedded data directory (with it stopped); `backup` either
    (a PostgreSQL store's backup is a data directory); `copy` one store into another, empty one
    (some projects: also into a store that holds others)."""
    try:
        from blindspots_server.config import ServerConfig
        from blindspots_server.storage import maintenance
    except ImportError:
        print("`blindspots store` needs the server package: pip install blindspots-server", file=sys.stderr)
        return 2
    config = ServerConfig.from_env(data_dir=args.data_dir, store=args.store, files=args.files)
    catalog = config.store if "://" in config.store and not config.store.startswith("file://") else ""
    data_dir = config.store.removeprefix("file://") if config.store and not catalog else config.data_dir
    if args.action == "check":
        if catalog:
            from blindspots_server.storage import StoreUnavailable, open_store
            try:
                store = open_store(catalog, files=config.files)
            except (StoreUnavailable, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            try:
                report = store.check()
            finally:
                store.close()
        else:
            report = maintenance.check_store(data_dir)
        for line in report.problems:
            print(f"DAMAGE  {line}")
        for line in report.notes:
            print(f"note    {line}")
        print(f"{report.files_checked} file(s) checked: " + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
        return 0 if report.ok else 1
    if args.action in ("copy", "backup"):
        return _store_copy(catalog or data_dir, config.files if catalog else None, args)
    if catalog:
        print("error: store recover covers the embedded store; a PostgreSQL store is restored from a backup "
              "(`blindspots store backup DEST --store ... --files ROOT`, then `store copy` back)", file=sys.stderr)
        return 2
    try:
        rec = maintenance.recover_store(data_dir)
    except (ValueError, maintenance.StoreUnusable) as exc:     # StoreUnusable: a server has it open
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"catalog rebuilt from the data files: {rec.runs} run(s), {rec.pools} pool(s), {rec.batches} batch(es), "
          f"{rec.rows} row(s), {rec.diagnoses} diagnosis(es), {rec.suggestion_sets} suggestion set(s)")
    if rec.old_catalog:
        print(f"the previous catalog was kept as {rec.old_catalog}")
    for line in rec.kept_aside:
        print(f"kept aside (unreadable or duplicate): {line}")
    return 0


def _store_copy(source: str, source_files, args) -> int:
    import sqlite3

    from blindspots_server.storage import DataLoss, StoreUnavailable, StoreUnusable
    from blindspots_server.storage.transfer import copy_between
    if not args.destination:
        print(f"error: store {args.action} needs a destination: a new directory"
              + (" or a postgresql:// URI (with --to-files)" if args.action == "copy" else ""), file=sys.stderr)
        return 2
    if args.action == "backup" and "://" in args.destination and not args.destination.startswith("file://"):
        print("error: store backup writes a data directory; to copy into a database use `store copy`", file=sys.stderr)
        return 2
    try:
        report = copy_between(source, source_files, args.destination, args.to_files,
                              progress=lambda line: print(line, file=sys.stderr), projects=args.project)
    except (DataLoss, StoreUnavailable, StoreUnusable, ValueError, sqlite3.DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, (DataLoss, sqlite3.DatabaseError)) else 2
    print(f"copied {report.runs} run(s), {report.pools} pool(s), {report.rows} row(s), {report.labels} label(s) and "
          f"{report.files} file(s) ({report.bytes / 1e6:.1f} MB) to {args.destination}")
    for pool_id in report.indexes_left_out:
        print(f"pool {pool_id}: its index changed since the snapshot (or is damaged) and was left out; the server "
              "builds it again from the pool's rows when it is next needed")
    if report.jobs_failed:
        print(f"{report.jobs_failed} job(s) pending or running in the source are failed in the copy "
              "(no process runs them there; start them again)")
    return 0


def _cmd_demo(args) -> int:
    try:
        from blindspots_scenarios.demo import run_demo
    except ImportError:
        print("`blindspots demo` needs the server package: pip install blindspots-server", file=sys.stderr)
        return 2
    run_demo(output_dir=args.output_dir, seed=args.seed, quick=args.quick, images=args.images)
    return 0


def _print_json(messages) -> None:
    """A message, or a list of them, in protobuf's JSON mapping (the API's messages as they are), with
    the .proto's field names and zero values written out, for jq and scripts."""
    import json

    from google.protobuf import json_format

    def as_dict(m):
        return json_format.MessageToDict(m, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    print(json.dumps([as_dict(m) for m in messages] if isinstance(messages, list) else as_dict(messages), indent=2))


def _cmd_runs(args) -> int:
    if args.json:
        with _client(args) as client:
            _print_json([r.message for r in client.list_runs(args.project)])
        return 0
    with _client(args) as client:
        frame = client.runs_frame(args.project)
    frame["bytes"] = frame["bytes"].map(_size)
    print(frame.rename(columns={"bytes": "size"}).to_string(index=False) if len(frame) else "no runs")
    return 0


def _cmd_info(args) -> int:
    with _client(args) as client:
        info = client.server_info()
    if args.json:
        _print_json(info)
        return 0
    access = ("no token needed, every project" if not info.auth else
              f"{'every project' if info.all_projects else 'projects ' + ', '.join(info.projects)}, "
              f"{'read-only' if info.read_only else 'read and write'}")
    from . import __version__
    print(f"server   blindspots-server {info.version} at {args.address} (this client: blindspots {__version__})\n"
          f"store    {info.store}\n"
          f"compute  {info.compute}, {info.index_shards} index shard{'s' if info.index_shards != 1 else ''} per pool"
          f"{f', indexes on the {info.index_device.upper()}' if info.index_device else ''}"
          f"{f', {info.ray_shard_gpus:g} GPU per Ray index shard' if info.ray_shard_gpus else ''}\n"
          f"limits   budget {info.max_budget}, batch {info.max_batch_rows} rows, "
          f"message {_size(info.max_message_bytes)}\n"
          f"retain   finished jobs kept {f'{info.job_retention_days} days' if info.job_retention_days else 'forever'}, "
          f"runs {f'deleted once unused {info.run_retention_days} days' if info.run_retention_days else 'kept forever'}, "
          f"pools {f'deleted once unused {info.pool_retention_days} days' if info.pool_retention_days else 'kept forever'}\n"
          f"suggest  {', '.join(info.strategies)}\n"
          f"access   {access}")
    return 0


def _cmd_pools(args) -> int:
    with _client(args) as client:
        pools = client.list_pools(args.project)
    if args.json:
        _print_json([p.message for p in pools])
        return 0
    for p in pools:
        m = p.message
        used = m.last_used_at.ToDatetime().strftime("%Y-%m-%d %H:%M") if m.HasField("last_used_at") else "-"
        print(f"{m.id}  {m.name}  project={m.project}  rows={m.num_rows}  dim={m.embedding_dim}  "
              f"index={m.index.kind or '-'}({m.index.num_indexed})  size={_size(m.stored_bytes)}  last used={used}")
    if not pools:
        print("no pools")
    return 0


def _cmd_diagnose(args) -> int:
    params = {k: v for k, v in (("min_cluster_size", args.min_cluster_size), ("fdr_alpha", args.fdr_alpha),
                                ("failure_definition", args.failure_definition)) if v}
    with _client(args) as client:
        run = client.get_run(args.run)
        try:
            diagnosis = run.latest_diagnosis() if args.latest else run.diagnose(progress=True, request_id=args.request_id, **params)
        except KeyboardInterrupt as interrupt:     # Run.diagnose cancels the job it started, or warns
            job = getattr(interrupt, "cancelled_job", "")
            print(f"\ninterrupted: diagnosis job {job} cancelled on the server" if job else "\ninterrupted",
                  file=sys.stderr)
            return INTERRUPTED
    # With --json, stdout holds the JSON alone; the gate's words go to stderr.
    out = sys.stderr if args.json else sys.stdout
    if args.json:
        _print_json(diagnosis.message)
    else:
        print(diagnosis.summary(max_regions=args.max_regions))
    if args.fail_on_regression:
        if diagnosis.previous_version is None:
            print("no previous version of this model on these test rows to compare with", file=out)
            return 0
        return _gate(diagnosis.previous_version, args.alpha, out)
    return 0


def _cmd_suggest(args) -> int:
    filters = []
    for f in args.filter or []:
        for op in ("<=", ">=", "!=", "==", "<", ">", "="):
            if op in f:
                col, val = f.split(op, 1)
                try:
                    value = float(val)
                except ValueError:
                    value = val
                filters.append((col.strip(), "==" if op == "=" else op, value))
                break
        else:
            print(f"error: --filter {f!r}: use column=value, column<number, ...", file=sys.stderr)
            return 2
    like = list(args.like)
    if args.like_file:
        try:
            like += _sample_ids_file(args.like_file)
        except ValueError as exc:
            print(f"error: --like-file {args.like_file}: {exc}", file=sys.stderr)
            return 2
        if not like:
            print(f"error: --like-file {args.like_file}: no sample ids in it", file=sys.stderr)
            return 2
    with _client(args) as client:
        frame = client.suggest(args.run, args.pool, args.budget, strategy=args.strategy, filters=filters,
                               allow_repeats=args.allow_repeats, name=args.name, output=args.output, format=args.format,
                               local_files_root=args.local_files_root or None, progress=True,
                               region_ids=args.region, query_ids=like, request_id=args.request_id)
    print(f"{len(frame)} candidates written to {args.output} (suggestion set {frame.attrs['suggestion_set']})")
    if len(frame):
        print(frame.head(args.show)[["rank", "sample_id", "score", "region_id", "reason"]].to_string(index=False))
    for c in frame.attrs.get("pool_coverage", []):
        print(f"region {c['region_id']}: {c['covered']:.0%} of {c['failures']} failures have an eligible pool row "
              f"within the pool's own spacing (distance ratio {c['distance_ratio']:.2f}; like the pool: ~90%, ~1)")
    return 0


def _sample_ids_file(path: str) -> list[str]:
    """Sample ids from a file: a .csv or .parquet's sample_id column, else one id a line
    (ValueError saying what is wrong with it)."""
    import pandas as pd
    try:
        if path.lower().endswith((".csv", ".parquet")):
            table = pd.read_parquet(path) if path.lower().endswith(".parquet") else pd.read_csv(path, dtype=str)
            if "sample_id" not in table.columns:
                raise ValueError(f"no sample_id column (it has {', '.join(map(str, table.columns))})")
            return table["sample_id"].astype(str).tolist()
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None


def _print_records(frame, *times: str) -> None:
    """A listing as a JSON array of objects, its ``times`` columns (UTC datetimes) in ISO 8601 with a Z."""
    import pandas as pd
    print(frame.assign(**{c: [None if pd.isna(t) else t.isoformat() + "Z" for t in frame[c]] for c in times})
          .to_json(orient="records", indent=2))


def _took(seconds: float) -> str:
    """A duration as a person reads it: 4.2s, 3m07s, 2h05m; "" for none."""
    if seconds != seconds or seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _cmd_suggestions_list(args) -> int:
    if not (args.run or args.pool):
        print("error: give --run, --pool or both", file=sys.stderr)
        return 2
    with _client(args) as client:
        frame = client.list_suggestion_sets(args.run or None, args.pool or None)
    if args.json:
        _print_records(frame, "created_at")
        return 0
    if not len(frame):
        print("no suggestion sets")
        return 0
    print(frame.assign(created_at=frame["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_string(index=False))
    return 0


def _cmd_jobs_list(args) -> int:
    with _client(args) as client:
        frame = client.list_jobs([s.upper() for s in args.state], kind=args.kind, run=args.run or None,
                                 pool=args.pool or None, project=args.project, limit=args.limit or None)
    if args.json:
        _print_records(frame, "created_at", "started_at", "updated_at")
        return 0
    if not len(frame):
        print("no jobs")
        return 0
    import pandas as pd
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    started = frame["started_at"]
    # waited: from submission to start (or to now, still pending); ran: from start to end (or to now)
    waited = (started.fillna(now) - frame["created_at"]).dt.total_seconds().where(
        started.notna() | frame["state"].eq("PENDING"))
    ran = ((frame["updated_at"].where(~frame["state"].eq("RUNNING"), now)) - started).dt.total_seconds()
    shown = frame.assign(done=[f"{f:.0%}" for f in frame["fraction_done"]],
                         created_at=frame["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
                         stage=[e or s for s, e in zip(frame["stage"], frame["error"])],
                         of=[r or p for r, p in zip(frame["run_id"], frame["pool_id"])],
                         waited=[_took(s) for s in waited], ran=[_took(s) for s in ran])
    print(shown[["id", "kind", "state", "done", "stage", "of", "result_id", "created_at", "waited", "ran"]]
          .to_string(index=False))
    return 0


def _cmd_jobs_watch(args) -> int:
    """Follow a job to its end (a progress bar on stderr); Ctrl-C stops watching, not the job."""
    with _client(args) as client:
        job = client.wait_job(args.job, progress=not args.quiet, label=args.job)
    print(f"{args.job}: SUCCEEDED" + (f" ({job.result_id})" if job.result_id else ""))
    return 0


def _cmd_jobs_cancel(args) -> int:
    from .v1 import blindspots_pb2 as pb
    with _client(args) as client:
        for job_id in args.ids:
            job = client.cancel_job(job_id)
            print(f"{job_id}: {pb.Job.State.Name(job.state)} ({job.stage})")
    return 0


def _cmd_suggestions_get(args) -> int:
    if bool(args.suggestion_set) == bool(args.run or args.pool):
        print("error: give a suggestion set id, or --run and/or --pool for the newest of their sets", file=sys.stderr)
        return 2
    with _client(args) as client:
        set_id = args.suggestion_set
        if not set_id:
            listed = client.list_suggestion_sets(args.run or None, args.pool or None)
            if not len(listed):
                print("error: no suggestion set stored for " + " and ".join(
                    f"{k} {v}" for k, v in (("run", args.run), ("pool", args.pool)) if v), file=sys.stderr)
                return 1
            set_id = listed["id"].iloc[-1]
        frame = client.get_suggestion_set(set_id, output=args.output, format=args.format,
                                          local_files_root=args.local_files_root or None)
    print(f"{len(frame)} candidates of suggestion set {set_id} written to {args.output}")
    if frame.attrs["note"]:
        print(f"note: {frame.attrs['note']}")
    return 0


def _cmd_suggestions_delete(args) -> int:
    with _client(args) as client:
        for set_id in args.ids:
            out = client.delete_suggestion_set(set_id, missing_ok=args.missing_ok)
            print(f"{set_id}: not there (nothing deleted)" if out is None else
                  f"deleted suggestion set {set_id}: {out.rows} picks released (later rounds may pick them again)")
    return 0


def _cmd_labels_import(args) -> int:
    from .labeling import read_label_studio_export
    labels = read_label_studio_export(args.export, from_name=args.from_name or None)
    target = {"pool_id": args.pool or "", "run_id": args.run or ""}
    with _client(args) as client:
        if len(labels):
            summary = client.import_labels(labels, source=args.source or f"label-studio:{args.export}", **target)
            print(f"{summary.labels_stored} labels stored ({summary.labels_replaced} replaced earlier ones); "
                  f"{summary.total_labeled} samples labeled in all")
        print(f"{labels.attrs['unlabeled']} tasks in the export had no label")
        if args.output:
            _write_labels(client.labels_frame(**target), args.output)
    return 0


def _cmd_labels_export(args) -> int:
    with _client(args) as client:
        _write_labels(client.labels_frame(pool_id=args.pool or "", run_id=args.run or ""), args.output)
    return 0


def _write_labels(frame, output: str) -> None:
    from .results import write_manifest
    write_manifest(frame, output)
    print(f"{len(frame)} labels (sample_id, uri, label) written to {output}")


def _cmd_relabel(args) -> int:
    from .labeling import export_picks, picks_format
    with _client(args) as client:
        frame = client.relabel_requests(args.run, diagnosis_id=args.diagnosis, kinds=args.kinds.split(","))
        run = client.get_run(args.run).message
    export_picks(frame, args.output, picks_format(args.output, args.format), list(run.class_names),
                 model_version=run.model_version, local_files_root=args.local_files_root or None)
    print(f"{len(frame)} relabel requests from {args.kinds} regions written to {args.output}")
    return 0


def _cmd_compare(args) -> int:
    with _client(args) as client:
        comparison = client.compare(args.run_a, args.run_b, min_overlap=args.min_overlap)
    if args.json:
        _print_json(comparison.message)
    else:
        print(comparison.summary(max_slices=args.max_slices))
    if args.output:
        from .results import write_manifest
        write_manifest(comparison.regions_frame(), args.output)
    if args.slices_output:
        from .results import write_manifest
        write_manifest(comparison.slices_frame(), args.slices_output)
    return _gate(comparison, args.alpha, sys.stderr if args.json else sys.stdout) if args.fail_on_regression else 0


def _gate(comparison, alpha: float, out=None) -> int:
    """The regression gate: list what got significantly worse in B (on ``out``, stdout by
    default) and return REGRESSED, or 0."""
    out = out or sys.stdout
    worse = comparison.regressions(alpha=alpha)
    if len(worse):
        print(f"REGRESSED: {len(worse)} finding(s) significantly worse in B:", file=out)
        for _, r in worse.iterrows():
            print(f"  [{r['scope']}] {r['name']}: {r['error_rate_a']:.1%} -> {r['error_rate_b']:.1%} of "
                  f"{r['support']} rows ({r['difference']:+.1%}, CI {r['diff_low']:+.1%} to "
                  f"{r['diff_high']:+.1%}, q={r['q_value']:.2g})", file=out)
        return REGRESSED
    print("no significant regression", file=out)
    return 0


def _cmd_report(args) -> int:
    from .report import write_report
    suggestions = None
    if args.suggestions and args.suggestion_set:
        print("error: give --suggestions (a manifest file) or --suggestion-set (a stored set), not both", file=sys.stderr)
        return 2
    if args.suggestions:
        import pandas as pd
        suggestions = (pd.read_csv(args.suggestions) if args.suggestions.lower().endswith(".csv")
                       else pd.read_parquet(args.suggestions))
    with _client(args) as client:
        if args.suggestion_set:
            suggestions = client.get_suggestion_set(args.suggestion_set)
        path = write_report(client, args.run, args.output, suggestions, diagnosis_id=args.diagnosis,
                            max_points=args.max_points, max_thumbnails=args.thumbnails,
                            compare_with=args.compare_with, projection=args.projection)
    print(f"report written to {path}")
    return 0


def _cmd_region_members(args) -> int:
    with _client(args) as client:
        diagnosis_id = args.diagnosis or client.get_diagnosis(run_id=args.run).id
        frame = client.region_members(diagnosis_id, args.region, output=args.output)
    a = frame.attrs
    print(f"{len(frame)} rows of region {args.region} of diagnosis {diagnosis_id} "
          f"({int(frame['failed'].sum())} failures) written to {args.output}")
    if a["num_rows_in_run"] > a["num_rows_diagnosed"]:
        print(f"note: the run has {a['num_rows_in_run'] - a['num_rows_diagnosed']} rows ingested after this "
              "diagnosis; they are in no region until the run is diagnosed again")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _cmd_delete(args) -> int:
    with _client(args) as client:
        delete = client.delete_run if args.target == "run" else client.delete_pool
        for target_id in args.ids:
            out = delete(target_id, missing_ok=args.missing_ok, force=args.force)
            if out is None:
                print(f"{target_id}: not there (nothing deleted)")
                continue
            what = [f"{out.rows} rows"] + ([f"{out.diagnoses} diagnoses"] if args.target == "run" else [])
            what += [f"{out.suggestion_sets} suggestion sets", f"{out.labels} labels",
                     f"{out.files} files ({_size(out.bytes)})"]
            print(f"deleted {args.target} {out.id}: {', '.join(what)}")
    return 0


def _cmd_prune(args) -> int:
    import pandas as pd
    what = "pool" if args.pools else "run"
    if args.pools and args.model is not None:
        print("error: --model narrows runs; pools have no model (drop --model or --pools)", file=sys.stderr)
        return 2
    with _client(args) as client:
        common = dict(project=args.project, older_than=args.older_than_days, unused_for=args.unused_days,
                      dry_run=args.dry_run, force=args.force)
        frame = (client.prune_pools(args.keep, **common) if args.pools else
                 client.prune_runs(args.keep, model_name=args.model, **common))
    if not len(frame):
        print("nothing to prune")
        return 0
    shown = frame.assign(created_at=frame["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
                         last_used_at=pd.to_datetime(frame["last_used_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M"),
                         bytes=frame["bytes"].map(_size))
    print(shown.drop(columns=["files"] + (["model", "version"] if args.pools else [])).to_string(index=False))
    kept = frame["action"].str.startswith("kept")
    if args.dry_run:
        print(f"{len(frame)} {what}(s) would be deleted, freeing {_size(int(frame['bytes'].sum()))} "
              "(--dry-run: nothing was)")
    else:
        print(f"{int((frame['action'] == 'deleted').sum())} {what}(s) deleted, {_size(int(frame['bytes'].sum()))} "
              f"freed" + (f"; {int(kept.sum())} kept (an unfinished job, or labels without --force)"
                          if kept.any() else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blindspots", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def client_args(sp):
        sp.add_argument("--address", default=os.environ.get("BLINDSPOTS_ADDRESS", "localhost:50051"))
        sp.add_argument("--token", default=os.environ.get("BLINDSPOTS_TOKEN", ""))
        sp.add_argument("--ca", default=os.environ.get("BLINDSPOTS_CA", ""), help="PEM CA file: use TLS")

    s = sub.add_parser("serve", help="run the server (embedded store, or --store postgresql://...; every setting also BLINDSPOTS_<NAME>)")
    s.add_argument("--data-dir", dest="data_dir")
    s.add_argument("--store", help="store URI, e.g. postgresql://user@host/db (default: embedded in --data-dir)")
    s.add_argument("--files", help="row files of a postgresql store: a directory all replicas share, s3://, gs://")
    s.add_argument("--ray-address", dest="ray_address", help="run heavy steps on a Ray cluster: auto or HOST:PORT")
    s.add_argument("--ray-shard-threads", dest="ray_shard_threads", type=int,
                   help="faiss threads of each Ray index shard (Ray gives an actor one); default 0: the CPUs the "
                        "smallest node declares over the shards each node holds")
    s.add_argument("--ray-shard-gpus", dest="ray_shard_gpus", type=float,
                   help="GPUs each Ray index shard asks for, its index then on a GPU (0.25: four shards share one; "
                        "needs faiss-gpu in the cluster's image); default 0: the shards' indexes on the CPU")
    s.add_argument("--index-shards", dest="index_shards", type=int, help="pool index shards (default: one per Ray node)")
    s.add_argument("--otlp-endpoint", dest="otlp_endpoint",
                   help="send OpenTelemetry traces of calls and jobs over OTLP/HTTP (e.g. http://collector:4318); "
                        "needs blindspots-server[tracing]")
    s.add_argument("--index-memory-mb", dest="index_memory_mb", type=int,
                   help="memory for the pool indexes held in the server's process (estimated); past it the least "
                        "recently used are let go and loaded from the store when next needed (default 0: no limit)")
    s.add_argument("--shard-memory-mb", dest="shard_memory_mb", type=int,
                   help="memory for the pool index shards on the Ray cluster, every pool's (estimated); past it the "
                        "least recently used pools' shards are stopped and built again when next needed "
                        "(default 0: no limit; give every server of the cluster the same)")
    s.add_argument("--job-retention-days", dest="job_retention_days", type=int,
                   help="delete finished jobs' records this many days after they ended (their diagnoses and "
                        "indexes stay); checked at start and hourly (default 30; 0: keep them)")
    s.add_argument("--run-retention-days", dest="run_retention_days", type=int,
                   help="delete runs unused this many days (not created, ingested into, diagnosed or suggested from "
                        "since) with their rows, diagnoses and suggestion sets; the newest run of each model and runs "
                        "holding labels stay; checked at start and hourly (default 0: keep every run)")
    s.add_argument("--pool-retention-days", dest="pool_retention_days", type=int,
                   help="delete pools unused this many days (not created, ingested into or suggested from since) "
                        "with their rows, index and suggestion sets; the newest pool of each project and pools "
                        "holding labels stay; checked at start and hourly (default 0: keep every pool)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--metrics-port", dest="metrics_port", type=int)
    s.add_argument("--auth-tokens-file", dest="auth_tokens_file")
    s.add_argument("--tls-cert", dest="tls_cert")
    s.add_argument("--tls-key", dest="tls_key")
    s.set_defaults(fn=_cmd_serve)

    s = sub.add_parser("store", help="check, recover, back up or copy a store")
    s.add_argument("action", choices=["check", "recover", "backup", "copy"])
    s.add_argument("destination", nargs="?", default="",
                   help="backup: a new directory; copy: a new directory or an empty postgresql:// store")
    s.add_argument("--data-dir", dest="data_dir")
    s.add_argument("--store", help="a postgresql:// store (with --files) instead of a data directory")
    s.add_argument("--files", help="the postgresql store's file root")
    s.add_argument("--to-files", dest="to_files", help="copy: the file root of a postgresql:// destination")
    s.add_argument("--project", action="append", help="copy, backup: only this project's runs and pools, with all "
                   "they hold (repeatable; default: everything); copy may then go into a store holding other "
                   "projects, not this one")
    s.set_defaults(fn=_cmd_store)

    s = sub.add_parser("demo", help="start a server on a temporary store and run the demo pipeline")
    s.add_argument("--output-dir", default="demo-output")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quick", action="store_true", help="smaller data")
    s.add_argument("--images", action="store_true", help="write a small PNG per sample (report thumbnails)")
    s.set_defaults(fn=_cmd_demo)

    s = sub.add_parser("info", help="the server's version, store, compute and limits, and what your token may do")
    client_args(s)
    s.add_argument("--json", action="store_true", help="print the ServerInfo message as JSON")
    s.set_defaults(fn=_cmd_info)

    for what, message, fn in (("runs", "Run", _cmd_runs), ("pools", "Pool", _cmd_pools)):
        s = sub.add_parser(what, help=f"list {what}")
        client_args(s)
        s.add_argument("--project", default="")
        s.add_argument("--json", action="store_true", help=f"print the {message} messages as JSON (protobuf's JSON mapping)")
        s.set_defaults(fn=fn)

    s = sub.add_parser("diagnose", help="diagnose a run and print the summary")
    client_args(s)
    s.add_argument("run")
    s.add_argument("--latest", action="store_true", help="show the latest diagnosis instead of a new one")
    s.add_argument("--min-cluster-size", type=int, default=0)
    s.add_argument("--fdr-alpha", type=float, default=0.0)
    s.add_argument("--failure-definition", default="", choices=["", "mispredicted", "top_loss"])
    s.add_argument("--max-regions", type=int, default=10)
    s.add_argument("--json", action="store_true", help="print the Diagnosis message as JSON (protobuf's JSON "
                   "mapping) instead of the summary; the gate's lines then go to stderr")
    s.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit {REGRESSED} when the run is significantly worse than the previous version of "
                   "its model (the one the diagnosis was compared with) overall, on a region or on a slice")
    s.add_argument("--alpha", type=float, default=0.0, help="level for --fail-on-regression (default: 0.05)")
    s.add_argument("--request-id", default="", help="a step run again with the same id (and options) follows "
                   "the diagnosis the first run started, unless it failed; e.g. the CI job's id")
    s.set_defaults(fn=_cmd_diagnose)

    s = sub.add_parser("suggest", help="write the samples to label next as a manifest")
    client_args(s)
    s.add_argument("run")
    s.add_argument("--pool", required=True)
    s.add_argument("--budget", type=int, required=True)
    s.add_argument("-o", "--output", required=True, help=".parquet or .csv")
    s.add_argument("--strategy", default="targeted",
                   help="targeted (default), margin, entropy, kcenter, random, similar (--like)")
    s.add_argument("--filter", action="append", help="e.g. region=north, price<500000 (repeatable)")
    s.add_argument("--region", action="append", type=int, default=[], metavar="ID",
                   help="targeted: aim the whole budget at this region of the diagnosis (repeatable)")
    s.add_argument("--like", action="append", default=[], metavar="SAMPLE_ID",
                   help="more like this test row of the run (repeatable; implies --strategy similar)")
    s.add_argument("--like-file", default="", metavar="FILE",
                   help="more like these test rows: one sample id a line, or a .csv/.parquet with a "
                        "sample_id column (e.g. from region-members)")
    s.add_argument("--allow-repeats", action="store_true")
    s.add_argument("--name", default="", help="stored with the set, e.g. nightly-2026-11-29 (`suggestions list`)")
    s.add_argument("--request-id", default="", help="a step run again with the same id (same run and pool) gets "
                   "the set the first run stored, and nothing new is picked; e.g. the CI job's id")
    s.add_argument("--show", type=int, default=10)
    _format_args(s)
    s.set_defaults(fn=_cmd_suggest)

    s = sub.add_parser("suggestions", help="suggestion sets stored by earlier Suggest calls: list them, fetch one")
    sets = s.add_subparsers(dest="suggestions_command", required=True)
    s = sets.add_parser("list", help="the sets of a run, a pool or both, oldest first")
    client_args(s)
    s.add_argument("--run", default="")
    s.add_argument("--pool", default="")
    s.add_argument("--json", action="store_true", help="one JSON object per set")
    s.set_defaults(fn=_cmd_suggestions_list)
    s = sets.add_parser("get", help="write a stored set's candidates as `suggest` wrote them")
    client_args(s)
    s.add_argument("suggestion_set", nargs="?", default="",
                   help="the set's id (sugg_...), as `suggest` and `suggestions list` print it")
    s.add_argument("--run", default="", help="instead of an id: the newest set of this run (and --pool)")
    s.add_argument("--pool", default="", help="instead of an id: the newest set from this pool (and --run)")
    s.add_argument("-o", "--output", required=True, help=".parquet, .csv or .json (label-studio)")
    _format_args(s)
    s.set_defaults(fn=_cmd_suggestions_get)
    s = sets.add_parser("delete", help="delete sets that will not be labeled: their picks may be picked again")
    client_args(s)
    s.add_argument("ids", nargs="+", metavar="SET")
    s.add_argument("--missing-ok", action="store_true", help="a set that is not there is not an error")
    s.set_defaults(fn=_cmd_suggestions_delete)

    s = sub.add_parser("jobs", help="diagnoses and index builds: list them (what is queued or running), cancel one")
    jobs = s.add_subparsers(dest="jobs_command", required=True)
    s = jobs.add_parser("list", help="the jobs you may see, newest first")
    client_args(s)
    s.add_argument("--state", action="append", default=[], choices=["pending", "running", "succeeded", "failed",
                   "cancelled", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"], metavar="STATE",
                   help="pending, running, succeeded, failed or cancelled (repeatable; default: any)")
    s.add_argument("--kind", default="", choices=["", "diagnose", "index_build"])
    s.add_argument("--run", default="", help="this run's jobs only (its diagnoses)")
    s.add_argument("--pool", default="", help="this pool's jobs only (its index builds)")
    s.add_argument("--project", default="", help="this project's runs' and pools' jobs only")
    s.add_argument("--limit", type=int, default=50, help="at most this many, newest first (0: every one)")
    s.add_argument("--json", action="store_true", help="one JSON object per job")
    s.set_defaults(fn=_cmd_jobs_list)
    s = jobs.add_parser("watch", help="follow a job to its end: exit 0 when it succeeded, 1 when it failed or "
                                      "was cancelled (Ctrl-C stops watching, not the job)")
    client_args(s)
    s.add_argument("job", metavar="JOB")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_cmd_jobs_watch)
    s = jobs.add_parser("cancel", help="cancel jobs: a pending one at once, a running one at its next step")
    client_args(s)
    s.add_argument("ids", nargs="+", metavar="JOB")
    s.set_defaults(fn=_cmd_jobs_cancel)

    s = sub.add_parser("labels", help="labels from a labeling tool: import an export, export what is stored")
    labels = s.add_subparsers(dest="labels_command", required=True)
    s = labels.add_parser("import", help="store the labels of a Label Studio export (JSON or JSON_MIN)")
    client_args(s)
    s.add_argument("export", help="the export file")
    _label_target_args(s)
    s.add_argument("--from-name", default="", help="the Choices control to read (default: the first)")
    s.add_argument("--source", default="", help="recorded with each label (default: label-studio:EXPORT)")
    s.add_argument("-o", "--output", default="", help="also write every stored label (.parquet/.csv)")
    s.set_defaults(fn=_cmd_labels_import)
    s = labels.add_parser("export", help="write every stored label as (sample_id, uri, label, ...)")
    client_args(s)
    _label_target_args(s)
    s.add_argument("-o", "--output", required=True, help=".parquet or .csv")
    s.set_defaults(fn=_cmd_labels_export)

    s = sub.add_parser("relabel", help="send the failed rows of label-noise regions to a labeling tool")
    client_args(s)
    s.add_argument("run")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--diagnosis", default="", help="diagnosis id (default: the run's latest)")
    s.add_argument("--kinds", default="label_noise", help="region kinds, comma-separated (label_noise,mixed)")
    _format_args(s)
    s.set_defaults(fn=_cmd_relabel)

    s = sub.add_parser("compare", help="compare two model versions diagnosed on the same test set")
    client_args(s)
    s.add_argument("run_a", help="the earlier version's run")
    s.add_argument("run_b", help="the newer version's run")
    s.add_argument("--min-overlap", type=float, default=0.0, help="Jaccard to match regions (default 0.25)")
    s.add_argument("--max-slices", type=int, default=8)
    s.add_argument("-o", "--output", default="", help="write the regions table (.csv/.parquet)")
    s.add_argument("--slices-output", default="", help="write the slices table (.csv/.parquet)")
    s.add_argument("--json", action="store_true", help="print the RunComparison message as JSON (protobuf's JSON "
                   "mapping) instead of the summary; the gate's lines then go to stderr")
    s.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit {REGRESSED} when B is significantly worse overall, on a region or on a slice")
    s.add_argument("--alpha", type=float, default=0.0, help="level for --fail-on-regression (default: 0.05)")
    s.set_defaults(fn=_cmd_compare)

    s = sub.add_parser("report", help="write a self-contained HTML report of a run's diagnosis")
    client_args(s)
    s.add_argument("run")
    s.add_argument("-o", "--output", required=True, help="the .html file to write")
    s.add_argument("--diagnosis", default="", help="diagnosis id (default: the run's latest)")
    s.add_argument("--suggestions", default="", help="a manifest from `blindspots suggest` to include")
    s.add_argument("--suggestion-set", default="", help="a stored suggestion set to include, by id (`suggestions list`)")
    s.add_argument("--max-points", type=int, default=3000, help="points drawn on the map")
    s.add_argument("--thumbnails", type=int, default=8, help="thumbnails per region and for suggestions")
    s.add_argument("--compare-with", default="", help="an earlier version's run on the same test set (default: the previous version "
                   "the diagnosis was compared with, if any)")
    s.add_argument("--projection", default="", choices=["", "pca"],
                   help="the map: the diagnosis's clustering space (default) or pca")
    s.set_defaults(fn=_cmd_report)

    s = sub.add_parser("region-members", help="export every row of one failure region (.parquet or .csv)")
    client_args(s)
    s.add_argument("run")
    s.add_argument("--region", type=int, required=True, help="the region id, as in `diagnose`")
    s.add_argument("-o", "--output", required=True, help=".parquet or .csv")
    s.add_argument("--diagnosis", default="", help="diagnosis id (default: the run's latest)")
    s.set_defaults(fn=_cmd_region_members)

    s = sub.add_parser("delete", help="delete runs or pools with everything stored for them")
    s.add_argument("target", choices=["run", "pool"])
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--missing-ok", action="store_true", help="an id that is not there is not an error")
    s.add_argument("--force", action="store_true", help="delete even if it holds labels from a labeling tool")
    client_args(s)
    s.set_defaults(fn=_cmd_delete)

    s = sub.add_parser("prune", help="retention: keep the newest runs of each model (or pools of each project), "
                                     "delete the rest")
    s.add_argument("--pools", action="store_true", help="prune pools, grouped by project, instead of runs")
    s.add_argument("--keep", type=int, required=True,
                   help="newest runs to keep per project and model name (--pools: pools per project)")
    s.add_argument("--project", default="", help="only this project's runs or pools")
    s.add_argument("--model", default=None, help="only this model name's runs")
    s.add_argument("--older-than-days", type=float, default=None,
                   help="delete only those older than this (still keeping the --keep newest)")
    s.add_argument("--unused-days", type=float, default=None,
                   help="delete only those unused this long: not created, ingested into, diagnosed (runs) or "
                        "suggested from since (--keep 1 --unused-days D --dry-run: what the server's "
                        "run_retention_days D deletes; with --pools, its pool_retention_days D)")
    s.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    s.add_argument("--force", action="store_true", help="delete those that hold labels from a labeling tool too")
    client_args(s)
    s.set_defaults(fn=_cmd_prune)
    return p


def _format_args(sp) -> None:
    sp.add_argument("--format", default="", choices=["", "parquet", "csv", "label-studio", "coco"],
                    help="default: by the output's suffix (.json: label-studio)")
    sp.add_argument("--local-files-root", default="", help="label-studio: serve file:// URIs under this "
                    "directory through Label Studio's local-files storage")


def _label_target_args(sp) -> None:
    target = sp.add_mutually_exclusive_group(required=True)
    target.add_argument("--pool", help="the pool whose samples were labeled")
    target.add_argument("--run", help="the run whose test rows were relabeled")


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.fn(args)
        sys.stdout.flush()       # a closed pipe shows here, not in Python's exit-time flush
        return code
    except BlindspotsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`blindspots runs | head`): stop quietly, as other command-line tools
        # do, and keep Python's exit-time flush from failing on the closed pipe too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
