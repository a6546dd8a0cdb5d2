"""Static checks of deploy/ for the replicated setup (no Docker daemon or cluster here): the files parse,
say what the server reads, and hang together (every kustomize resource exists, every Secret and
volume a pod names is defined, replicas share one catalog and one file root)."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from blindspots_server.config import ServerConfig

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SETTINGS = {f"BLINDSPOTS_{f.name.upper()}" for f in fields(ServerConfig)}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_runs_two_replicas_on_one_postgres_and_one_file_volume():
    compose = yaml.safe_load((DEPLOY / "docker-compose.replicas.yml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if name.startswith("blindspots")}
    assert len(replicas) == 2
    stores = {s["environment"]["BLINDSPOTS_STORE"] for s in replicas.values()}
    files = {s["environment"]["BLINDSPOTS_FILES"] for s in replicas.values()}
    (store,), (root,) = stores, files        # one catalog, one file root
    assert store.startswith("postgresql://") and "@postgres:5432/" in store
    for s in replicas.values():
        assert set(s["environment"]) <= SETTINGS, set(s["environment"]) - SETTINGS
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert any(v.split(":")[0] in compose["volumes"] and v.split(":")[1] == root for v in s["volumes"])
        assert "postgres" in s["build"]["args"]["EXTRAS"]
    host_ports = [p.split(":")[0] for s in replicas.values() for p in s["ports"]]
    assert len(host_ports) == len(set(host_ports)), "two replicas cannot publish the same host port"
    assert "healthcheck" in services["postgres"]


def test_k8s_scaleout_set_hangs_together():
    root = DEPLOY / "k8s" / "scaleout"
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    docs = [d for r in kustomization["resources"] for d in _docs(root / r)]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), d
        by_kind.setdefault(d["kind"], []).append(d)
    (deployment,) = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) - {"HOME"} <= SETTINGS, set(env) - SETTINGS
    secret_names = {s["metadata"]["name"]: s for s in by_kind["Secret"]}
    ref = env["BLINDSPOTS_STORE"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in secret_names[ref["name"]]["stringData"]
    assert secret_names[ref["name"]]["stringData"][ref["key"]].startswith("postgresql://")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["files"] == env["BLINDSPOTS_FILES"]["value"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    pvcs = {p["metadata"]["name"]: p for p in by_kind["PersistentVolumeClaim"]}
    assert pvcs[claims["files"]]["spec"]["accessModes"] == ["ReadWriteMany"], "every replica mounts the files"
    (service,) = [s for s in by_kind["Service"] if s["metadata"]["name"] == "blindspots"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (postgres,) = by_kind["StatefulSet"]
    assert any(s["metadata"]["name"] == postgres["spec"]["serviceName"] for s in by_kind["Service"])
    (ray,) = by_kind["RayCluster"]
    assert ray["apiVersion"] == "ray.io/v1"
    assert f"{ray['metadata']['name']}-head-svc" in env["BLINDSPOTS_RAY_ADDRESS"]["value"]
    images = {c["image"] for g in [ray["spec"]["headGroupSpec"], *ray["spec"]["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"]}
    assert images == {container["image"]}, "Ray workers must run the servers' code"
    for group in [ray["spec"]["headGroupSpec"], *ray["spec"]["workerGroupSpecs"]]:
        # Pool index shards (actors, on any Ray pod) read the pool's row files at the servers' path.
        ray_pod = group["template"]["spec"]
        (ray_container,) = ray_pod["containers"]
        ray_mounts = {m["name"]: m["mountPath"] for m in ray_container["volumeMounts"]}
        ray_claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in ray_pod["volumes"]}
        assert ray_mounts["files"] == env["BLINDSPOTS_FILES"]["value"] and ray_claims["files"] == claims["files"]
    # The replicas cap the cluster's index shards at half the Ray workers' memory at their fewest.
    workers_gi = sum(g["minReplicas"] * int(c["resources"]["limits"]["memory"].removesuffix("Gi"))
                     for g in ray["spec"]["workerGroupSpecs"] for c in g["template"]["spec"]["containers"])
    assert 0 < int(env["BLINDSPOTS_SHARD_MEMORY_MB"]["value"]) <= workers_gi * 1024 // 2


def test_k8s_backup_cronjob_backs_up_the_replicas_store():
    """The nightly backup reads the replicas' catalog and file root, and its command is one the CLI
    takes (parsed by the CLI's own parser): a store backup into the backups volume."""
    import shlex

    from blindspots.cli import build_parser
    root = DEPLOY / "k8s" / "scaleout"
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    docs = [d for r in kustomization["resources"] for d in _docs(root / r)]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (cron,) = [d for d in docs if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and len(cron["spec"]["schedule"].split()) == 5
    server = deployment["spec"]["template"]["spec"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (served,) = server["containers"]
    env, served_env = ({e["name"]: e for e in c["env"]} for c in (container, served))
    assert env["BLINDSPOTS_STORE"] == served_env["BLINDSPOTS_STORE"]      # the same Secret
    assert env["BLINDSPOTS_FILES"] == served_env["BLINDSPOTS_FILES"]
    assert container["image"] == served["image"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    served_claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in server["volumes"]
                     if "persistentVolumeClaim" in v}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert claims["files"] == served_claims["files"] and mounts["files"] == env["BLINDSPOTS_FILES"]["value"]
    pvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert claims["backups"] in pvcs
    script = container["args"][0].splitlines()
    (line,) = [ln.strip() for ln in script if ln.strip().startswith("blindspots ")]
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.command, args.action) == ("store", "backup")
    assert args.destination.startswith(mounts["backups"] + "/") and args.destination.endswith(".partial")
    assert args.store is None and args.files is None          # from BLINDSPOTS_STORE / BLINDSPOTS_FILES
    renamed = [ln.strip() for ln in script if ln.strip().startswith("mv ")]
    assert renamed == [f"mv {args.destination} {args.destination.removesuffix('.partial')}"]


def test_single_server_manifests_still_parse():
    for path in [DEPLOY / "docker-compose.yml", *sorted((DEPLOY / "k8s").glob("*.yaml"))]:
        assert _docs(path), path


def test_the_single_server_caps_its_loaded_indexes_well_under_its_memory_limit():
    (deployment,) = [d for d in _docs(DEPLOY / "k8s" / "deployment.yaml") if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) <= SETTINGS | {"HOME"}
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    assert 0 < int(env["BLINDSPOTS_INDEX_MEMORY_MB"]) <= int(limit[:-2]) * 1024 // 2


def test_compose_prometheus_gets_every_rule_file_its_configuration_names():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (prometheus,) = [s for name, s in yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"].items()
                     if name == "prometheus"]
    config_file = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_dir = config_file.split("=", 1)[1].rsplit("/", 1)[0]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    for rules in config["rule_files"]:
        source = mounted[f"{config_dir}/{rules}"]
        assert (DEPLOY / source).resolve() == (DEPLOY / "prometheus" / rules).resolve()
        assert yaml.safe_load((DEPLOY / source).read_text())["groups"]
