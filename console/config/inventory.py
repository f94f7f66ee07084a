"""The inventory: a person's description of one environment's fleet, in YAML.

`load_inventory(path)` reads a file from `hosts/`, validates every key and returns a
frozen `Inventory`. Validation happens on PyYAML's node tree so that every mistake is
reported as one line naming the file, the line, the key and what was expected:

    hosts/production.yaml:12: hosts[3].port: expected an integer from 1 to 65535, got 'ssh'

Nothing is contacted while loading; a bad inventory never changes anything on any host.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from console.config.keys import HEALTH, HOST, KEY_METRIC, METRICS, SSH, TIMEOUTS, TOP
from console.config.reader import Reader, Table
from console.core.errors import ConsoleError

# Each dataclass holds one section's values; its fields are the keys of that section's
# table in console.config.keys, which declares their defaults and what they mean.


@dataclass(frozen=True)
class Host:
    """One web host: `name` is what people see, `address` is what ssh connects to."""

    name: str
    address: str
    port: int = HOST.default("port")
    deploy_path: str = TOP.default("deploy_path")
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def fields(self) -> dict[str, Any]:
        """The values a command or URL template may name: {name}, {address}, {port},
        {deploy_path} and every host var."""
        return {
            **self.vars,
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "deploy_path": self.deploy_path,
        }


@dataclass(frozen=True)
class SSHSettings:
    user: str
    key: Path
    known_hosts: Path


@dataclass(frozen=True)
class Timeouts:
    """Seconds a single host may take, per kind of step; a dead host never hangs a deploy."""

    connect: float = TIMEOUTS.default("connect")
    command: float = TIMEOUTS.default("command")
    sync: float = TIMEOUTS.default("sync")
    verify: float = TIMEOUTS.default("verify")


@dataclass(frozen=True)
class Health:
    """How `verify` proves a host serves the new revision: a URL whose body contains the
    full commit id, or a command whose output does."""

    url: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class KeyMetric:
    """A metric the person deploying watches, and the rule that judges it."""

    name: str
    query: str
    source: str = KEY_METRIC.default("source")
    stat: str = KEY_METRIC.default("stat")
    unit: str = KEY_METRIC.default("unit")
    bad: str = KEY_METRIC.default("bad")
    limit: float = KEY_METRIC.default("limit")
    dry_run: bool = KEY_METRIC.default("dry_run")


@dataclass(frozen=True)
class Metrics:
    statsd: tuple[str, int] = METRICS.default("statsd")
    prometheus: str | None = METRICS.default("prometheus")
    baseline: float = METRICS.default("baseline")
    watch: float = METRICS.default("watch")
    key: tuple[KeyMetric, ...] = METRICS.default("key")


@dataclass(frozen=True)
class Inventory:
    """One environment: where trunk comes from, how to reach its hosts, how to deploy."""

    path: Path
    environment: str
    repo: str
    branch: str
    deploy_path: str
    ssh: SSHSettings
    hosts: tuple[Host, ...]
    state_dir: Path
    assets: str = TOP.default("assets")
    build_command: str | None = TOP.default("build_command")
    restart: str | None = TOP.default("restart")
    health: Health | None = None  # no key health: verify is skipped with a notice
    keep_releases: int = TOP.default("keep_releases")
    strategy: str = TOP.default("strategy")
    chunk_size: int = TOP.default("chunk_size")
    max_failures: str = TOP.default("max_failures")
    timeouts: Timeouts = Timeouts()
    review_trailer: str = TOP.default("review_trailer")
    ddl_paths: tuple[str, ...] = TOP.default("ddl_paths")
    metrics: Metrics = Metrics()
    webhooks: tuple[str, ...] = TOP.default("webhooks")
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConsoleError(f"{self.path}: no host named {name!r} in this inventory")

    def allowed_failures(self, hosts: int | None = None) -> int:
        """How many hosts may fail before the deploy stops activating anything."""
        n = len(self.hosts) if hosts is None else hosts
        if self.max_failures.endswith("%"):
            return math.floor(n * float(self.max_failures[:-1]) / 100)
        return int(self.max_failures)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; raises ConsoleError with one line on any mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot read the inventory: {exc.strerror}") from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConsoleError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is None:
        *first, last = TOP.required
        raise ConsoleError(f"{path}: the inventory is empty; expected {', '.join(first)} and {last}")
    make: dict[Table, Callable[..., Any]] = {
        TOP: functools.partial(Inventory, path),
        SSH: SSHSettings,
        HOST: Host,
        HEALTH: Health,
        TIMEOUTS: Timeouts,
        METRICS: Metrics,
        KEY_METRIC: KeyMetric,
    }
    inventory: Inventory = Reader(path, base=path.resolve().parent, make=make).table(root, "", TOP)
    return inventory
