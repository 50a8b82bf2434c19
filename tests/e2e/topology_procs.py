"""The tested topology as processes: nginx (started here with its own config, rendered from
deploy/nginx/routerone.conf.template, on loopback ports) in front of Router One instances that
share PostgreSQL and Redis. Used by test_topology.py and by bench/scale.py.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "routerone.conf.template"
UPSTREAM_SERVER = "server {addr} max_fails=1 fail_timeout=2s;"

__all__ = ["NGINX_TEMPLATE", "render_template", "nginx_binary", "Nginx", "parse_access_log"]


def render_template(text: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst does with these variables: `${NAME}` -> value; other `$...`
    (nginx's own variables) untouched. Every `${...}` left over is an error."""
    out = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), text)
    left = re.findall(r"\$\{\w+\}", out)
    assert not left, f"unrendered variables: {left}"
    return out


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found:
        return found
    reason = "nginx is not installed (Debian package `nginx`; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the topology test must run", pytrace=False)
    pytest.skip(reason)


class Nginx:
    """nginx in the foreground with its own prefix directory, config, pid file and logs: never the
    system service."""

    def __init__(self, root: Path, port: int, upstream_ports: list[int], *, worker_processes: int = 1) -> None:
        self.root, self.port = root, port
        self.access_log = root / "access.log"
        self.error_log = root / "error.log"
        site = render_template(NGINX_TEMPLATE.read_text(), {
            "ROUTERONE_UPSTREAM_SERVERS": "\n    ".join(UPSTREAM_SERVER.format(addr=f"127.0.0.1:{p}")
                                                      for p in upstream_ports),
            "NGINX_PORT": f"127.0.0.1:{port}",
            "NGINX_ACCESS_LOG": str(self.access_log)})
        (root / "routerone.conf").write_text(site)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / "tmp" / d).mkdir(parents=True, exist_ok=True)
        self.conf = root / "nginx.conf"
        self.conf.write_text(f"""
worker_processes {worker_processes};
pid {root}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include {root}/routerone.conf;
}}
""")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "Nginx":
        binary = nginx_binary()
        check = subprocess.run([binary, "-t", "-q", "-p", str(self.root), "-e", str(self.error_log),
                                "-c", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, f"nginx -t failed:\n{check.stderr}"
        self.proc = subprocess.Popen([binary, "-p", str(self.root), "-e", str(self.error_log), "-c",
                                      str(self.conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nginx exited:\n{self.error_log.read_text(errors='replace')}"
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self            # nginx answers (the instances may not be up yet)
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)          # graceful stop of master and workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


_LOG = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d+) \d+ rt=\S+ upstream=(?P<upstream>.*?) '
                  r'ustatus=(?P<ustatus>.*?) rid=(?P<rid>\S*)$')


def parse_access_log(path: Path) -> dict[str, dict]:
    """Client x-request-id -> {status, upstream (the instances tried, last one answered or failed),
    ustatus}."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _LOG.search(line)
        if m and m.group("rid") not in ("", "-"):
            out[m.group("rid")] = {"status": int(m.group("status")),
                                   "upstream": [u.strip() for u in m.group("upstream").split(",")],
                                   "ustatus": m.group("ustatus")}
    return out
