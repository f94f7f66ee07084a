"""The inventory: a person's description of one environment's fleet, in YAML.

`load_inventory(path)` reads a file from `hosts/`, validates every key and returns a
frozen `Inventory`. Validation happens on PyYAML's node tree so that every mistake is
reported as one line naming the file, the line, the key and what was expected:

    hosts/production.yaml:12: hosts[3].port: expected an integer from 1 to 65535, got 'ssh'

Nothing is contacted while loading; a bad inventory never changes anything on any host.
Only plain YAML is read: a tag such as `!!python/name:` is refused, as is a file that is
not UTF-8.

Secrets are declared in the inventory (a name, and the environment variable or private
file that holds the value) and read only when a run needs them (`secret_values`), so
`invoke status` needs none of them, and a deploy finds a missing one before it starts.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from console.config.keys import HEALTH, HOST, KEY_METRIC, METRICS, SECRET, SSH, TIMEOUTS, TOP
from console.config.reader import Reader, Table
from console.core.errors import ConsoleError
from console.core.text import add_secret, printable

#: A secret this short would be censored out of every message it matches by chance.
MIN_SECRET = 8

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
class Secret:
    """A named value for command templates, held by an environment variable or a private file."""

    name: str
    env: str | None = None
    file: Path | None = None

    def value(self, inventory: Path) -> str:
        """The value, now; ConsoleError if it is unset, empty, short or not one line."""
        where = f"{inventory}: secrets: {self.name}"
        if self.env:
            raw = os.environ.get(self.env)
            if raw is None:
                raise ConsoleError(f"{where}: the environment variable {self.env} is not set")
        else:
            assert self.file is not None
            try:
                raw = self.file.read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConsoleError(
                    f"{where}: cannot read {self.file}: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        source = f"${self.env}" if self.env else str(self.file)
        if len(raw) < MIN_SECRET or "\n" in raw or "\0" in raw or "\r" in raw:
            raise ConsoleError(f"{where}: expected one line of at least {MIN_SECRET} characters in {source}")
        return raw


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
    tree_port: int = TOP.default("tree_port")
    chunk_size: int = TOP.default("chunk_size")
    max_failures: str = TOP.default("max_failures")
    timeouts: Timeouts = Timeouts()
    review_trailer: str = TOP.default("review_trailer")
    ddl_paths: tuple[str, ...] = TOP.default("ddl_paths")
    metrics: Metrics = Metrics()
    webhooks: tuple[str, ...] = TOP.default("webhooks")
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    secrets: tuple[Secret, ...] = TOP.default("secrets")

    def secret_values(self) -> dict[str, str]:
        """Every secret's value, read now and censored (`***`) in whatever this process
        shows or records from now on; ConsoleError names the first one missing."""
        values = {secret.name: secret.value(self.path) for secret in self.secrets}
        for value in values.values():
            add_secret(value)
        return values

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConsoleError(f"{self.path}: no host named '{printable(name, 60)}' in this inventory")

    def allowed_failures(self, hosts: int | None = None) -> int:
        """How many hosts may fail before the deploy stops activating anything."""
        n = len(self.hosts) if hosts is None else hosts
        if self.max_failures.endswith("%"):
            return math.floor(n * float(self.max_failures[:-1]) / 100)
        return int(self.max_failures)


#: The tags plain YAML resolves to (what `yaml.safe_load` builds); any other is refused.
PLAIN_TAGS = frozenset(tag for tag in yaml.SafeLoader.yaml_constructors if tag and tag.startswith("tag:yaml.org,2002:"))


def _check_tags(path: Path, node: yaml.Node, where: str = "", seen: set[int] | None = None) -> None:
    """Refuse any node with a tag plain YAML does not have (`!!python/name:`, `!custom`)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias: this node was checked where its anchor is
        return
    seen.add(id(node))
    if node.tag not in PLAIN_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConsoleError(
            f"{path}:{node.start_mark.line + 1}: {where or '(top level)'}: YAML tag {tag!r} is not allowed; "
            "expected plain values"
        )
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            _check_tags(path, key, where or name, seen)
            _check_tags(path, value, f"{where}.{name}" if where else str(name), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_tags(path, item, f"{where}[{i}]", seen)


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; raises ConsoleError with one line on any mistake."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConsoleError(f"{path}: cannot read the inventory: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data[: exc.start].count(b"\n") + 1
        raise ConsoleError(
            f"{path}:{number}: not UTF-8 (byte 0x{data[exc.start]:02x}); expected an inventory in UTF-8"
        ) from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConsoleError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is not None:
        _check_tags(path, root)
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
        SECRET: Secret,
    }
    inventory: Inventory = Reader(path, base=path.resolve().parent, make=make).table(root, "", TOP)
    return inventory
