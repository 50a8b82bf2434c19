"""Docker cannot run here, so the packaging is kept honest by reading it: the Dockerfile,
compose.yaml and deploy/k8s describe the topology that tests/e2e/test_topology.py runs (three
instances behind nginx rendered from the same template, PostgreSQL and Redis shared), with the same
port, environment names that Router One actually reads, config that loads, secrets that exist where
the config says, and probes on routes the app serves."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from routerone.app import create_app
from routerone.settings import PROVIDER_ENV_KEYS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import test_topology  # noqa: E402
import topology_procs  # noqa: E402

PORT = 8080


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(ROOT / "compose.yaml")


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    docs = {}
    for f in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            docs[doc["kind"]] = doc
    return docs


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def final_stage(dockerfile: str) -> str:
    return dockerfile[[m.start() for m in re.finditer(r"^FROM ", dockerfile, re.M)][-1]:]


def env_names_known(names) -> list[str]:
    settings = {f"ROUTERONE_{n.upper()}" for n in Settings.__dataclass_fields__} | {"ROUTERONE_CONFIG"}
    return [n for n in names if n.startswith("ROUTERONE_") and n not in settings
            or not n.startswith("ROUTERONE_") and n not in PROVIDER_ENV_KEYS.values()]


def test_the_same_topology_everywhere(compose, k8s):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "routerone", "nginx"}
    assert services["routerone"]["deploy"]["replicas"] == test_topology.N_INSTANCES == 3
    assert k8s["Deployment"]["spec"]["replicas"] == test_topology.N_INSTANCES
    assert set(services["routerone"]["depends_on"]) == {"postgres", "redis"}


def test_one_port(compose, k8s, dockerfile):
    stage = final_stage(dockerfile)
    assert f"EXPOSE {PORT}" in stage and f"ROUTERONE_PORT={PORT}" in stage
    rt = compose["services"]["routerone"]
    assert rt["environment"]["ROUTERONE_PORT"] == str(PORT) and rt["expose"] == [str(PORT)]
    assert k8s["ConfigMap"]["data"]["ROUTERONE_PORT"] == str(PORT)
    container = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": PORT}]
    assert k8s["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert k8s["Service"]["spec"]["selector"] == k8s["Deployment"]["spec"]["selector"]["matchLabels"]


def test_nginx_is_the_tested_template(compose):
    nginx = compose["services"]["nginx"]
    mounted = [v.split(":") for v in nginx["volumes"]]
    assert [(ROOT / src.removeprefix("./")).resolve() for src, _, *_ in mounted] == [topology_procs.NGINX_TEMPLATE]
    assert mounted[0][1].startswith("/etc/nginx/templates/") and mounted[0][1].endswith(".template")
    template = topology_procs.NGINX_TEMPLATE.read_text()
    used = set(re.findall(r"\$\{(\w+)\}", template))
    assert used == {"ROUTERONE_UPSTREAM_SERVERS", "NGINX_PORT", "NGINX_ACCESS_LOG"}
    assert used <= set(nginx["environment"])
    # the same server line as the test's, pointed at the compose service
    assert nginx["environment"]["ROUTERONE_UPSTREAM_SERVERS"] == \
        topology_procs.UPSTREAM_SERVER.format(addr=f"routerone:{PORT}")
    assert nginx["environment"]["NGINX_PORT"] == str(PORT) and nginx["ports"] == [f"{PORT}:{PORT}"]
    assert f"fail_timeout={test_topology.FAIL_TIMEOUT_S:.0f}s" in topology_procs.UPSTREAM_SERVER
    rendered = topology_procs.render_template(template, {k: "x" for k in used})
    assert "proxy_next_upstream error timeout;" in rendered and "non_idempotent" not in rendered.split("#")[0]


def test_environment_names_are_ones_router_one_reads(compose, k8s, dockerfile):
    stage_env = re.findall(r"\b(ROUTERONE_\w+)=", final_stage(dockerfile))
    assert stage_env and not env_names_known(stage_env)
    assert not env_names_known(compose["services"]["routerone"]["environment"])
    cm = [k for k in k8s["ConfigMap"]["data"] if k.isupper()]
    container = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert not env_names_known(cm + [e["name"] for e in container["env"]])
    assert container["envFrom"] == [{"configMapRef": {"name": k8s["ConfigMap"]["metadata"]["name"]}}]


def test_config_file_is_shared_loads_and_its_secret_files_are_mounted(compose, k8s, tmp_path):
    text = (ROOT / "deploy" / "routerone.toml").read_text()
    assert k8s["ConfigMap"]["data"]["routerone.toml"] == text
    secret_paths = re.findall(r'"\$file" = "([^"]+)"', text)
    assert secret_paths and all(p.startswith("/run/secrets/") for p in secret_paths)
    names = [Path(p).name for p in secret_paths]
    # compose: each is a declared secret given to the routerone service
    assert set(names) <= set(compose["secrets"]) and set(names) <= set(compose["services"]["routerone"]["secrets"])
    # k8s: each is an item of the secret volume mounted at /run/secrets, and a key of the Secret
    spec = k8s["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert mounts["secrets"] == "/run/secrets"
    assert {i["path"] for i in vols["secrets"]["secret"]["items"]} == set(names)
    assert set(names) <= set(k8s["Secret"]["stringData"])
    assert mounts["config"] + "/routerone.toml" == compose["services"]["routerone"]["environment"]["ROUTERONE_CONFIG"] \
        == k8s["ConfigMap"]["data"]["ROUTERONE_CONFIG"]
    # and the file loads: the secrets from files, the rest as written
    local = text
    for p in secret_paths:
        f = tmp_path / Path(p).name
        # a secret file holds the value as written (a URL must still be a valid URL)
        f.write_text(f"postgresql://router@db/{f.name}\n" if "url" in f.name else f"sk-ro-value-of-{f.name}\n")
        local = local.replace(p, str(f))
    (tmp_path / "routerone.toml").write_text(local)
    s = load_settings(str(tmp_path / "routerone.toml"), env={})
    assert s.admin_key == "sk-ro-value-of-routerone_admin_key"
    assert s.database_url == "postgresql://router@db/routerone_database_url"
    assert (s.limiter, s.redis_url) == ("redis", "redis://redis:6379/0")


def test_probes_hit_routes_the_app_serves(k8s, dockerfile, tmp_path):
    container = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert f"http://127.0.0.1:{PORT}/healthz" in final_stage(dockerfile).split("HEALTHCHECK", 1)[1]
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", demo="off"))
    paths = {r.resource.canonical for r in app.router.routes() if r.method == "GET"}
    assert {"/readyz", "/healthz", "/metrics"} <= paths


def test_drain_fits_in_the_grace_periods(compose, k8s):
    drain_s = float(compose["services"]["routerone"]["environment"]["ROUTERONE_DRAIN_TIMEOUT_S"])
    assert drain_s == float(k8s["ConfigMap"]["data"]["ROUTERONE_DRAIN_TIMEOUT_S"]) == Settings().drain_timeout_s
    assert int(compose["services"]["routerone"]["stop_grace_period"].rstrip("s")) > drain_s
    spec = k8s["Deployment"]["spec"]["template"]["spec"]
    pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and spec["terminationGracePeriodSeconds"] > drain_s + float(pre_stop[1])


def test_image_is_slim_non_root_without_compilers(dockerfile):
    stage = final_stage(dockerfile)
    assert re.match(r"FROM python:3\.\d+-slim\b", stage)
    assert re.search(r"^USER (?!root|0\b)\S+", stage, re.M)
    assert "HEALTHCHECK" in stage and "STOPSIGNAL SIGTERM" in stage
    assert not re.search(r"apt-get install|gcc|build-essential|g\+\+|make\b", stage)
    assert "--only-binary=:all:" in dockerfile       # no dependency is compiled, not even in the build stage
    assert "COPY --from=build /opt/routerone /opt/routerone" in stage
