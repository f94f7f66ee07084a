"""The inventory: a person's description of one environment's fleet, in YAML.

`load_inventory(path)` reads a file from `hosts/`, validates every key and returns a
frozen `Inventory`. Validation happens on PyYAML's node tree so that every mistake is
reported as one line naming the file, the line, the key and what was expected:

    hosts/production.yaml:12: hosts[3].port: expected an integer from 1 to 65535, got 'ssh'

Nothing is contacted while loading; a bad inventory never changes anything on any host.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from console.core.errors import ConsoleError

DEFAULT_DDL_PATHS: tuple[str, ...] = ("**/*.sql", "migrations/**", "schema/**")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RANGE = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class Host:
    """One web host: `name` is what people see, `address` is what ssh connects to."""

    name: str
    address: str
    port: int = 22
    deploy_path: str = "/srv/www"
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

    connect: float = 5.0
    command: float = 30.0
    sync: float = 120.0
    verify: float = 15.0


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
    source: str = "statsd"  # statsd or prometheus
    stat: str = "rate"  # statsd: rate (per minute), p95, mean, gauge
    unit: str = ""
    bad: str = "down"  # which direction is bad: down or up
    limit: float = 0.2  # relative change in the bad direction that is "degraded"
    dry_run: bool = False


@dataclass(frozen=True)
class Metrics:
    statsd: tuple[str, int] = ("127.0.0.1", 8125)
    prometheus: str | None = None
    baseline: float = 300.0
    watch: float = 300.0
    key: tuple[KeyMetric, ...] = ()


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
    assets: str = "assets"
    build_command: str | None = None
    restart: str | None = None
    health: Health | None = None
    keep_releases: int = 5
    strategy: str = "chunked"
    chunk_size: int = 10
    max_failures: str = "0"  # a count ("2") or a percent ("10%")
    timeouts: Timeouts = Timeouts()
    review_trailer: str = "Reviewed-by"
    ddl_paths: tuple[str, ...] = DEFAULT_DDL_PATHS
    metrics: Metrics = Metrics()
    webhooks: tuple[str, ...] = ()
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


def expand_hosts(pattern: str) -> list[str]:
    """`web[001:050].example.com` -> web001.example.com ... web050.example.com.

    The width of the start number sets the zero padding; several ranges multiply.
    Raises ValueError with what is wrong, for the loader to place in the file.
    """
    match = _RANGE.search(pattern)
    if not match:
        if "[" in pattern or "]" in pattern:
            raise ValueError(f"unbalanced brackets in {pattern!r}")
        return [pattern]
    body = match.group(1)
    parts = body.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"range [{body}] in {pattern!r} must be [START:END] with digits")
    start, end = int(parts[0]), int(parts[1])
    if start > end:
        raise ValueError(f"range [{body}] in {pattern!r} runs backwards")
    width = len(parts[0]) if parts[0].startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for i in range(start, end + 1) for name in expand_hosts(f"{head}{str(i).zfill(width)}{tail}")]


class _Reader:
    """Walks a YAML node tree and turns mistakes into one-line errors with a line number."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, key: str, expected: str) -> ConsoleError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConsoleError(f"{self.path}{line}: {key}: {expected}")

    def mapping(
        self, node: yaml.Node, key: str, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key or "(top level)", f"expected a mapping, got {_show(node)}")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            where = f"{key}.{name}" if key else str(name)
            if name not in allowed:
                raise self.fail(k, where, f"unknown key; expected one of: {', '.join(sorted(allowed))}")
            if name in out:
                raise self.fail(k, where, "key given twice")
            out[name] = v
        for name in sorted(required - out.keys()):
            raise self.fail(node, f"{key}.{name}" if key else name, "required key is missing")
        return out

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"expected a single value, got {_show(node)}")
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value

    def string(self, node: yaml.Node, key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, key, f"expected a non-empty string, got {value!r}")
        if pattern and not pattern.match(value):
            raise self.fail(node, key, f"expected letters, digits, '.', '_' or '-', got {value!r}")
        return value

    def integer(self, node: yaml.Node, key: str, low: int, high: int | None = None) -> int:
        value = self.scalar(node, key)
        top = "" if high is None else f" to {high}"
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise self.fail(node, key, f"expected an integer from {low}{top}, got {value!r}")
        return value

    def number(self, node: yaml.Node, key: str) -> float:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(node, key, f"expected a positive number of seconds, got {value!r}")
        return float(value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.fail(node, key, f"expected true or false, got {value!r}")
        return value

    def choice(self, node: yaml.Node, key: str, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, key)
        if value not in choices:
            raise self.fail(node, key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of strings, got {_show(node)}")
        return tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(node.value))

    def plain(self, node: yaml.Node, key: str) -> dict[str, Any]:
        self.mapping(node, key, allowed=_AnyKey())
        value = yaml.safe_load(yaml.serialize(node))
        return dict(value or {})

    def fraction(self, node: yaml.Node, key: str) -> float:
        value = self.scalar(node, key)
        text = str(value).strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            number = -1
        if number < 0 or isinstance(value, bool):
            raise self.fail(node, key, f"expected a percent like 20% or a fraction like 0.2, got {value!r}")
        return number


class _AnyKey(set):
    """An allowed-keys set that allows every key (for free-form `vars`)."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


def _show(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


_TOP_KEYS = {
    "environment",
    "repo",
    "branch",
    "deploy_path",
    "state_dir",
    "ssh",
    "hosts",
    "assets",
    "build",
    "restart",
    "health",
    "keep_releases",
    "strategy",
    "chunk_size",
    "max_failures",
    "timeouts",
    "review",
    "ddl",
    "metrics",
    "notify",
    "vars",
}


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
    r = _Reader(path)
    if root is None:
        raise ConsoleError(f"{path}: the inventory is empty; expected environment, repo, ssh and hosts")
    top = r.mapping(root, "", _TOP_KEYS, {"environment", "repo", "ssh", "hosts"})
    base = path.resolve().parent

    environment = r.string(top["environment"], "environment", _NAME)
    deploy_path = r.string(top["deploy_path"], "deploy_path") if "deploy_path" in top else "/srv/www"
    if not deploy_path.startswith("/"):
        raise r.fail(top["deploy_path"], "deploy_path", f"expected an absolute path, got {deploy_path!r}")
    repo = r.string(top["repo"], "repo")
    if "://" not in repo and not repo.startswith(("git@", "/")) and ":" not in repo:
        repo = str(base / repo)
    fleet_vars = r.plain(top["vars"], "vars") if "vars" in top else {}

    ssh_keys = r.mapping(top["ssh"], "ssh", {"user", "key", "known_hosts"}, {"user", "key", "known_hosts"})
    key = _path(r.string(ssh_keys["key"], "ssh.key"), base)
    if not os.access(key, os.R_OK) or not key.is_file():
        raise r.fail(ssh_keys["key"], "ssh.key", f"cannot read the private key file {key}")
    known_hosts = _path(r.string(ssh_keys["known_hosts"], "ssh.known_hosts"), base)
    if not os.access(known_hosts, os.R_OK) or not known_hosts.is_file():
        raise r.fail(
            ssh_keys["known_hosts"],
            "ssh.known_hosts",
            f"cannot read the known_hosts file {known_hosts}; host keys are always verified",
        )
    ssh = SSHSettings(r.string(ssh_keys["user"], "ssh.user", _NAME), key, known_hosts)

    hosts = _hosts(r, top["hosts"], deploy_path, fleet_vars)
    state_dir = (
        _path(r.string(top["state_dir"], "state_dir"), base)
        if "state_dir" in top
        else Path(os.path.expanduser(f"~/.local/state/deploy-console/{environment}"))
    )
    kw: dict[str, Any] = {"branch": r.string(top["branch"], "branch") if "branch" in top else "main"}
    if "assets" in top:
        kw["assets"] = r.string(top["assets"], "assets").strip("/")
    if "build" in top:
        build = r.mapping(top["build"], "build", {"command"})
        if "command" in build:
            kw["build_command"] = r.string(build["command"], "build.command")
    if "restart" in top:
        kw["restart"] = _template(r, top["restart"], "restart", hosts)
    if "health" in top:
        kw["health"] = _health(r, top["health"], hosts)
    if "keep_releases" in top:
        kw["keep_releases"] = r.integer(top["keep_releases"], "keep_releases", 2)
    if "strategy" in top:
        kw["strategy"] = r.choice(top["strategy"], "strategy", ("chunked",))
    if "chunk_size" in top:
        kw["chunk_size"] = r.integer(top["chunk_size"], "chunk_size", 1, 1000)
    if "max_failures" in top:
        kw["max_failures"] = _max_failures(r, top["max_failures"])
    if "timeouts" in top:
        t = r.mapping(top["timeouts"], "timeouts", {"connect", "command", "sync", "verify"})
        kw["timeouts"] = Timeouts(**{k: r.number(v, f"timeouts.{k}") for k, v in t.items()})
    if "review" in top:
        review = r.mapping(top["review"], "review", {"trailer"})
        if "trailer" in review:
            kw["review_trailer"] = r.string(review["trailer"], "review.trailer").rstrip(":")
    if "ddl" in top:
        ddl = r.mapping(top["ddl"], "ddl", {"paths"})
        if "paths" in ddl:
            kw["ddl_paths"] = r.strings(ddl["paths"], "ddl.paths")
    if "metrics" in top:
        kw["metrics"] = _metrics(r, top["metrics"])
    if "notify" in top:
        notify = r.mapping(top["notify"], "notify", {"webhooks"})
        if "webhooks" in notify:
            hooks = r.strings(notify["webhooks"], "notify.webhooks")
            for i, url in enumerate(hooks):
                if not url.startswith(("http://", "https://")):
                    raise r.fail(
                        notify["webhooks"].value[i],
                        f"notify.webhooks[{i}]",
                        f"expected an http:// or https:// URL, got {url!r}",
                    )
            kw["webhooks"] = hooks
    return Inventory(
        path=path,
        environment=environment,
        repo=repo,
        deploy_path=deploy_path,
        ssh=ssh,
        hosts=hosts,
        state_dir=state_dir,
        vars=fleet_vars,
        **kw,
    )


def _hosts(r: _Reader, node: yaml.Node, deploy_path: str, fleet_vars: dict[str, Any]) -> tuple[Host, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise r.fail(node, "hosts", f"expected a list of host names or host mappings, got {_show(node)}")
    if not node.value:
        raise r.fail(node, "hosts", "the host list is empty; expected at least one host")
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.value):
        key = f"hosts[{i}]"
        if isinstance(item, yaml.ScalarNode):
            pattern = r.string(item, key)
            try:
                names = expand_hosts(pattern)
            except ValueError as exc:
                raise r.fail(item, key, f"bad host range: {exc}") from None
            new = [Host(n, n, 22, deploy_path, dict(fleet_vars)) for n in names]
        else:
            m = r.mapping(item, key, {"name", "address", "port", "deploy_path", "vars"}, {"name"})
            name = r.string(m["name"], f"{key}.name")
            port = r.integer(m["port"], f"{key}.port", 1, 65535) if "port" in m else 22
            path = r.string(m["deploy_path"], f"{key}.deploy_path") if "deploy_path" in m else deploy_path
            if not path.startswith("/"):
                raise r.fail(m["deploy_path"], f"{key}.deploy_path", f"expected an absolute path, got {path!r}")
            host_vars = {**fleet_vars, **(r.plain(m["vars"], f"{key}.vars") if "vars" in m else {})}
            address = r.string(m["address"], f"{key}.address") if "address" in m else name
            new = [Host(name, address, port, path, host_vars)]
        for host in new:
            if not _NAME.match(host.name):
                raise r.fail(item, key, f"expected a host name of letters, digits, '.', '_' or '-', got {host.name!r}")
            if host.name in seen:
                raise r.fail(item, key, f"duplicate host {host.name!r} (first given at line {seen[host.name]})")
            seen[host.name] = item.start_mark.line + 1
            hosts.append(host)
    return tuple(hosts)


def _template(r: _Reader, node: yaml.Node, key: str, hosts: tuple[Host, ...]) -> str:
    """A command or URL template; its {placeholders} must name a field or var of every host."""
    text = r.string(node, key)
    for host in hosts:
        try:
            text.format(**host.fields())
        except (KeyError, IndexError) as exc:
            fields = ", ".join(sorted(host.fields()))
            raise r.fail(
                node, key, f"placeholder {{{exc.args[0]}}} is not set for host {host.name}; expected one of: {fields}"
            ) from None
        except ValueError as exc:
            raise r.fail(node, key, f"bad template: {exc}") from None
    return text


def _health(r: _Reader, node: yaml.Node, hosts: tuple[Host, ...]) -> Health:
    if isinstance(node, yaml.ScalarNode):
        text = _template(r, node, "health", hosts)
        return Health(url=text) if text.startswith(("http://", "https://")) else Health(command=text)
    m = r.mapping(node, "health", {"url", "command"})
    if len(m) != 1:
        raise r.fail(node, "health", "expected exactly one of url or command")
    ((kind, value),) = m.items()
    text = _template(r, value, f"health.{kind}", hosts)
    if kind == "url" and not text.startswith(("http://", "https://")):
        raise r.fail(value, "health.url", f"expected an http:// URL template, got {text!r}")
    return Health(**{kind: text})


def _max_failures(r: _Reader, node: yaml.Node) -> str:
    value = r.scalar(node, "max_failures")
    text = str(value).strip()
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or bool(
        re.fullmatch(r"\d+(\.\d+)?%", text) and float(text[:-1]) <= 100
    )
    if not ok:
        raise r.fail(node, "max_failures", f"expected a host count like 2 or a percent like 10%, got {value!r}")
    return text


def _metrics(r: _Reader, node: yaml.Node) -> Metrics:
    m = r.mapping(node, "metrics", {"statsd", "prometheus", "baseline", "watch", "key"})
    kw: dict[str, Any] = {}
    if "statsd" in m:
        text = r.string(m["statsd"], "metrics.statsd")
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise r.fail(m["statsd"], "metrics.statsd", f"expected HOST:PORT, got {text!r}")
        kw["statsd"] = (host, int(port))
    if "prometheus" in m:
        kw["prometheus"] = r.string(m["prometheus"], "metrics.prometheus").rstrip("/")
    for name in ("baseline", "watch"):
        if name in m:
            kw[name] = r.number(m[name], f"metrics.{name}")
    if "key" in m:
        items = m["key"]
        if not isinstance(items, yaml.SequenceNode):
            raise r.fail(items, "metrics.key", f"expected a list of key metrics, got {_show(items)}")
        metrics = []
        for i, item in enumerate(items.value):
            key = f"metrics.key[{i}]"
            f = r.mapping(
                item, key, {"name", "query", "source", "stat", "unit", "bad", "limit", "dry_run"}, {"name", "query"}
            )
            spec: dict[str, Any] = {
                "name": r.string(f["name"], f"{key}.name"),
                "query": r.string(f["query"], f"{key}.query"),
            }
            if "source" in f:
                spec["source"] = r.choice(f["source"], f"{key}.source", ("statsd", "prometheus"))
            if "stat" in f:
                spec["stat"] = r.choice(f["stat"], f"{key}.stat", ("rate", "p95", "mean", "gauge"))
            if "unit" in f:
                spec["unit"] = str(r.scalar(f["unit"], f"{key}.unit"))
            if "bad" in f:
                spec["bad"] = r.choice(f["bad"], f"{key}.bad", ("down", "up"))
            if "limit" in f:
                spec["limit"] = r.fraction(f["limit"], f"{key}.limit")
            if "dry_run" in f:
                spec["dry_run"] = r.boolean(f["dry_run"], f"{key}.dry_run")
            if spec.get("source") == "prometheus" and "prometheus" not in kw:
                raise r.fail(f["source"], f"{key}.source", "a prometheus metric needs metrics.prometheus (a base URL)")
            metrics.append(KeyMetric(**spec))
        kw["key"] = tuple(metrics)
    return Metrics(**kw)
