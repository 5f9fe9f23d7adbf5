"""Real PostgreSQL and Redis (or Valkey) servers for tests and benchmarks: Debian's binaries, run on loopback from a
temporary directory, stopped and removed after. No mocks: what Triage talks to is the real server.

PostgreSQL refuses to run as root; when the tests do (CI runs as root), the server runs as the `postgres` user the
Debian package created, through `runuser`. Install them with `apt-get install -y postgresql redis-server`
(`make test` does).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PASSWORD",
    "PASSWORD_ENV",
    "Instance",
    "Postgres",
    "Redis",
    "config_dict",
    "free_port",
    "postgres_bin",
    "redis_bin",
    "running_postgres",
    "running_redis",
    "store_config",
    "triage_instance",
]

PASSWORD = "s3cret-Test-pw"  # the superuser's, for the tests of a wrong password; not a real secret
USER = "triage"
# Triage reads the password from the env var `store.password_env` names, never from the URL.
PASSWORD_ENV = "TRIAGE_TEST_PG_PASSWORD"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (the newest installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def redis_bin() -> str | None:
    return shutil.which("redis-server") or shutil.which("valkey-server")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """One PostgreSQL cluster in `root`, listening on 127.0.0.1:`port` (and a Unix socket in `root`)."""

    root: Path
    port: int
    bin: Path
    fsync: bool = False
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        auth = f"{USER}:{password}" if password is not None else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                          f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions", "--no-sync"]),
            check=True, capture_output=True,
        )
        pwfile.unlink()

    def start(self, timeout: float = 30.0) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if not self.fsync:  # tests: durability against a crash of the machine is not what they check
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                          "-w", "-t", str(int(timeout)), "start"]),
            check=True, capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False, capture_output=True,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        env = {**os.environ, "PGPASSWORD": PASSWORD}  # psql's own variable
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            check=True, capture_output=True, text=True, env=env,
        )
        return done.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL (no password: see `store_config`)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


def store_config(url: str, **overrides: object) -> dict[str, object]:
    """The `store:` section of a config on the database at `url`."""
    return {"url": url, "password_env": PASSWORD_ENV, **overrides}


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[Postgres]:
    """A started PostgreSQL cluster in a temporary directory, stopped and removed on exit."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="triage-pg-"))
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
    server = Postgres(root / "cluster", free_port(), bin_dir, fsync=fsync)
    os.environ[PASSWORD_ENV] = PASSWORD  # for the Triage processes the tests start, too
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Redis:
    root: Path
    port: int
    binary: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def running_redis() -> Iterator[Redis]:
    binary = redis_bin()
    if binary is None:
        raise RuntimeError("Redis is not installed: apt-get install -y redis-server (or valkey-server)")
    root = Path(tempfile.mkdtemp(prefix="triage-redis-"))
    server = Redis(root, free_port(), binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Instance:
    """One `triage serve` process (its own interpreter) on a loopback port."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """kill -9: no shutdown, no flush."""
        self.process.kill()
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def triage_instance(config: dict[str, object], *, workers: int = 1, env: dict[str, str] | None = None,
                    args: tuple[str, ...] = (), timeout: float = 90.0) -> Iterator[Instance]:
    """`python -m triage serve` on `config` (a dict, written as YAML), ready when /healthz answers; stopped with
    SIGTERM on exit (then SIGKILL if it lingers)."""
    with triage_instances(config, 1, workers=workers, env=env, args=args, timeout=timeout) as [instance]:
        yield instance


@contextlib.contextmanager
def triage_instances(config: dict[str, object], count: int, *, workers: int = 1, env: dict[str, str] | None = None,
                     args: tuple[str, ...] = (), timeout: float = 90.0) -> Iterator[list[Instance]]:
    """`count` instances started at once (all spawned before any is waited for)."""
    with contextlib.ExitStack() as stack:
        spawned = [stack.enter_context(_spawned(config, workers, env, args)) for _ in range(count)]
        for instance in spawned:
            _wait_healthy(instance, timeout)
        yield spawned


def _wait_healthy(instance: Instance, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if instance.process.poll() is not None:
            raise RuntimeError(f"triage serve exited ({instance.process.returncode}):\n{instance.output()[-3000:]}")
        try:
            with urllib.request.urlopen(instance.url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"triage serve did not answer within {timeout} s:\n{instance.output()[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def _spawned(config: dict[str, object], workers: int, env: dict[str, str] | None,
             args: tuple[str, ...]) -> Iterator[Instance]:
    import signal
    import sys

    import yaml

    root = Path(tempfile.mkdtemp(prefix="triage-instance-"))
    path = root / "triage.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = root / "serve.log"
    server = str(Path(__file__).resolve().parents[1] / "server")
    full_env = {**os.environ, "PYTHONPATH": server, **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage", "serve", "--config", str(path), "--port", str(port),
             "--workers", str(workers), "--log-level", "warning", *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env,
        )
    instance = Instance(f"http://127.0.0.1:{port}", process, log)
    try:
        yield instance
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def config_dict(config: object) -> dict[str, object]:
    """A TriageConfig as the YAML-able dict a `triage serve` process reads."""
    dumped: dict[str, object] = config.model_dump(mode="json", exclude_defaults=True)  # type: ignore[attr-defined]
    return dumped
