"""The deployment in deploy/, brought up without root: nginx and the app processes.

The files are used as written, with only what a machine-wide install fixes changed: the
ports (free ones), the paths (/srv/expertbook is this checkout, the certificate a
self-signed one made here), and nginx's own files (pid, logs, temp) under a folder of ours.
App processes run the systemd units' ExecStart with their Environment= lines (%i: the
port), plus what /etc/expertbook/expertbook.env would hold. Used by tests/deploy and by
bench/load.py; every process started here is stopped by `stop()`.
"""

from __future__ import annotations

import getpass
import http.client
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX = "/usr/sbin/nginx"
SERVE_ROOT = "/srv/expertbook"
UPSTREAMS = ("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def replace_all(text: str, replacements: dict[str, str]) -> str:
    """Each key replaced everywhere; a key the file no longer holds is an error, so a
    changed file cannot slip past the test untried."""
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{old!r} is no longer in the file")
        text = text.replace(old, new)
    return text


def unit_command(unit: str, instance: str) -> tuple[list[str], dict[str, str], Path]:
    """(argv, Environment= settings, working directory) of a systemd unit in deploy/systemd,
    for this checkout."""
    argv, env, cwd = [], {}, ROOT
    for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
        key, _, value = line.partition("=")
        value = value.replace("%i", instance)
        if key == "Environment":
            env.update(pair.split("=", 1) for pair in shlex.split(value))
        elif key == "ExecStart":
            argv = shlex.split(value)
        elif key == "WorkingDirectory":
            cwd = Path(value.replace(SERVE_ROOT, str(ROOT)))
    program = argv[0].replace(SERVE_ROOT + "/.venv/bin/", "")
    argv = [sys.executable, *(["-m", "flask"] if program == "flask" else []), *argv[1:]]
    if program not in ("python", "flask"):
        raise ValueError(f"unexpected ExecStart in {unit}: {argv}")
    return argv, env, cwd


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class PortTaken(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    log: Path
    port: int | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Stack:
    """nginx in front of `count` app processes (and, with `worker`, `flask worker`)."""

    folder: Path
    env: dict[str, str]
    count: int = 3
    worker: bool = True
    # The tests read the app processes' access logs; a load test turns them off (their
    # writes would be part of what it measures).
    access_log: bool = True
    http_port: int = 0
    https_port: int = 0
    apps: list[Process] = field(default_factory=list)
    others: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self) -> Stack:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.http_port, self.https_port = free_port(), free_port()
        env = {**self.env, "BASE_URL": self.url, "ACCESS_LOG": str(self.access_log).lower()}
        for _ in range(self.count):
            self.apps.append(self._spawn("expertbook@.service", str(free_port()), env))
        if self.worker:
            self.others.append(self._spawn("expertbook-worker.service", "worker", env))
        for i in range(self.count):
            for _ in range(3):
                try:
                    self._wait_healthy(self.apps[i])
                    break
                except PortTaken:  # another program took the free port meanwhile
                    self.apps[i] = self._spawn("expertbook@.service", str(free_port()), env)
            else:
                self._wait_healthy(self.apps[i])
        self.others.append(self._start_nginx([app.port for app in self.apps]))
        return self

    def _spawn(self, unit: str, instance: str, env: dict) -> Process:
        argv, unit_env, cwd = unit_command(unit, instance)
        log = self.folder / f"{unit.split('.')[0].strip('@')}-{instance}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                argv, cwd=cwd, env={**env, **unit_env}, stdout=output, stderr=subprocess.STDOUT
            )
        port = int(instance) if instance.isdigit() else None
        return Process(f"{unit}:{instance}", process, log, port)

    def _wait_healthy(self, app: Process, deadline: float = 45) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if app.process.poll() is not None:
                break
            conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
            finally:
                conn.close()
        if "Address already in use" in app.log_text():
            raise PortTaken(app.name)
        raise RuntimeError(f"{app.name} did not start:\n{app.log_text()[-3000:]}")

    def render_site(self, ports: list[int]) -> str:
        cert, key = self_signed(self.folder)
        (self.folder / "acme").mkdir(exist_ok=True)
        servers = "".join(f"    server {address};\n" for address in UPSTREAMS)
        upstreams = {servers: "".join(f"    server 127.0.0.1:{port};\n" for port in ports)}
        return replace_all(
            (DEPLOY / "nginx" / "expertbook.conf").read_text(),
            {
                **upstreams,
                "listen 80;": f"listen 127.0.0.1:{self.http_port};",
                "listen [::]:80;": "",
                "listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
                "listen [::]:443 ssl http2;": "",
                "/etc/letsencrypt/live/book.example.com/fullchain.pem": str(cert),
                "/etc/letsencrypt/live/book.example.com/privkey.pem": str(key),
                "/var/www/html": str(self.folder / "acme"),
                SERVE_ROOT + "/": str(ROOT) + "/",
            },
        )

    def _start_nginx(self, ports: list[int]) -> Process:
        """nginx with a main file like Debian's /etc/nginx/nginx.conf (which includes the
        site inside `http`), its own files in our folder, as this user."""
        prefix = self.folder / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        (prefix / "expertbook.conf").write_text(self.render_site(ports))
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        temp = "".join(f"    {sub}_temp_path {prefix / sub};\n"
                       for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 2;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n    include /etc/nginx/mime.types;\n"
            "    default_type application/octet-stream;\n"
            f"    access_log {prefix / 'access.log'};\n{temp}"
            f"    include {prefix / 'expertbook.conf'};\n}}\n"
        )
        log = prefix / "stderr.log"
        args = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(log)]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t:\n{check.stderr}")
        with (prefix / "stdout.log").open("w") as output:
            process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        nginx = Process("nginx", process, log, self.https_port)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return nginx
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not listen")

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 30):
        """One HTTPS request through nginx (certificate not checked: it is our own):
        (status, headers as a dict of lists, body bytes)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.https_port, timeout=timeout, context=context
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        found: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            found.setdefault(name.lower(), []).append(value)
        return response.status, found, data

    def stop(self) -> None:
        """Stop nginx first (no new requests), then the app processes; only ours."""
        for item in reversed(self.others + self.apps):
            if item.process.poll() is None:
                item.process.terminate()
            try:
                item.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait(timeout=10)
