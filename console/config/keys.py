"""Every inventory key, declared once: one table per section.

Each row is a `Key`: its name, the check that reads it, its default and a one-line doc.
The tables drive everything about a key: which keys a section allows and requires, how
each is validated, and its default (the dataclasses of `console.config.inventory` take
their field defaults from here). `hosts/example-production.yaml` documents every key of
these tables, and holds no other; `tests/test_inventory.py` checks both directions.

Tables are read top to bottom, so a check may use the keys above it: hosts inherit the
fleet's `deploy_path` and `vars`, and `restart` and `health` are checked against every host.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from console.config.reader import (
    NAME,
    REQUIRED,
    SECTION,
    Derived,
    Key,
    Reader,
    Scope,
    Table,
    boolean,
    choice,
    fraction,
    integer,
    seconds,
    section,
    show,
    strings,
    text,
)

#: Files whose change marks a commit as DDL (with CREATE/ALTER/DROP/RENAME TABLE|INDEX lines).
DEFAULT_DDL_PATHS: tuple[str, ...] = ("**/*.sql", "migrations/**", "schema/**")

#: The backends a key metric may read (`console.metrics.backends` makes one of each).
METRIC_SOURCES: tuple[str, ...] = ("statsd", "prometheus")

_RANGE = re.compile(r"\[([^\]]*)\]")


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


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8125` for IPv6) as (host, port); ValueError says what is wrong."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# -- checks of single keys ---------------------------------------------------------------------


def _absolute(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    path = r.string(node, key)
    if not path.startswith("/"):
        raise r.fail(node, key, f"expected an absolute path, got {path!r}")
    return path


def _repo(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    repo = r.string(node, key)
    if "://" not in repo and not repo.startswith(("git@", "/")) and ":" not in repo:
        return str(r.base / repo)
    return repo


def _local_path(r: Reader, node: yaml.Node, key: str) -> Path:
    path = Path(os.path.expanduser(r.string(node, key)))
    return path if path.is_absolute() else r.base / path


def _state_dir(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    return _local_path(r, node, key)


def _private_key(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    path = _local_path(r, node, key)
    if not os.access(path, os.R_OK) or not path.is_file():
        raise r.fail(node, key, f"cannot read the private key file {path}")
    return path


def _known_hosts(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    path = _local_path(r, node, key)
    if not os.access(path, os.R_OK) or not path.is_file():
        raise r.fail(node, key, f"cannot read the known_hosts file {path}; host keys are always verified")
    return path


def _vars(r: Reader, node: yaml.Node, key: str, seen: Scope) -> dict[str, Any]:
    """Free-form values; a host's override the fleet's (read before them)."""
    return {**seen.get("vars", {}), **r.plain(node, key)}


def _template(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    """A command or URL template; its {placeholders} must name a field or var of every host."""
    template = r.string(node, key)
    for host in seen["hosts"]:
        try:
            template.format(**host.fields())
        except (KeyError, IndexError) as exc:
            fields = ", ".join(sorted(host.fields()))
            raise r.fail(
                node, key, f"placeholder {{{exc.args[0]}}} is not set for host {host.name}; expected one of: {fields}"
            ) from None
        except ValueError as exc:
            raise r.fail(node, key, f"bad template: {exc}") from None
    return template


def _url_template(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    url = _template(r, node, key, seen)
    if not url.startswith(("http://", "https://")):
        raise r.fail(node, key, f"expected an http:// URL template, got {url!r}")
    return url


def _max_failures(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    value = r.scalar(node, key)
    count = str(value).strip()
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or bool(
        re.fullmatch(r"\d+(\.\d+)?%", count) and float(count[:-1]) <= 100
    )
    if not ok:
        raise r.fail(node, key, f"expected a host count like 2 or a percent like 10%, got {value!r}")
    return count


def _statsd(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[str, int]:
    address = r.string(node, key)
    try:
        return parse_address(address)
    except ValueError as exc:
        raise r.fail(node, key, str(exc)) from None


def _source(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    source = r.choice(node, key, METRIC_SOURCES)
    if source == "prometheus" and not seen["prometheus"]:
        raise r.fail(node, key, "a prometheus metric needs metrics.prometheus (a base URL)")
    return source


def _webhooks(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[str, ...]:
    hooks = r.strings(node, key)
    for i, url in enumerate(hooks):
        if not url.startswith(("http://", "https://")):
            raise r.fail(node.value[i], f"{key}[{i}]", f"expected an http:// or https:// URL, got {url!r}")
    return hooks


# -- the tables ------------------------------------------------------------------------------

SSH = Table(
    (
        Key("user", text(NAME), REQUIRED, "the user ssh logs in as on every host"),
        Key("key", _private_key, REQUIRED, "the private key file (must be readable)"),
        Key("known_hosts", _known_hosts, REQUIRED, "host keys are verified against this file only"),
    )
)

HOST = Table(
    (
        Key("name", text(), REQUIRED, "what people see (letters, digits, . _ -)"),
        Key("address", text(), Derived(lambda seen: seen["name"]), "what ssh connects to; default: the name"),
        Key("port", integer(1, 65535), 22, "the ssh port"),
        Key(
            "deploy_path",
            _absolute,
            Derived(lambda seen: seen["deploy_path"]),
            "default: the top-level deploy_path",
        ),
        Key("vars", _vars, Derived(lambda seen: dict(seen["vars"])), "override fleet vars for this host"),
    )
)

HEALTH = Table(
    (
        Key("url", _url_template, None, "a URL template whose body must contain the new full commit id"),
        Key("command", _template, None, "a command template whose output must contain it"),
    )
)

TIMEOUTS = Table(
    (
        Key("connect", seconds(), 5.0, "seconds to open a host's ssh connection"),
        Key("command", seconds(), 30.0, "seconds a remote command may take"),
        Key("sync", seconds(), 120.0, "seconds an rsync to one host may take"),
        Key("verify", seconds(), 15.0, "seconds the health check of one host may take"),
    )
)

KEY_METRIC = Table(
    (
        Key("name", text(), REQUIRED, "what the console shows"),
        Key("query", text(), REQUIRED, "a StatsD key, or PromQL for source: prometheus"),
        Key("source", _source, "statsd", "statsd or prometheus"),
        Key("stat", choice("rate", "p95", "mean", "gauge"), "rate", "statsd: rate (per minute), p95, mean, gauge"),
        Key("unit", lambda r, node, key, seen: str(r.scalar(node, key)), "", "shown after the value"),
        Key("bad", choice("down", "up"), "down", "which direction is bad: down or up"),
        Key("limit", fraction(), 0.2, "relative change in the bad direction that is degraded (20% or 0.2)"),
        Key("dry_run", boolean(), False, "true: report only, never halt a rolling deploy"),
    )
)


def _key_metrics(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[Any, ...]:
    items = r.items(node, key, "key metrics")
    return tuple(r.table(item, f"{key}[{i}]", KEY_METRIC, seen) for i, item in enumerate(items))


METRICS = Table(
    (
        Key("statsd", _statsd, ("127.0.0.1", 8125), "HOST:PORT the embedded StatsD collector listens on"),
        Key(
            "prometheus",
            lambda r, node, key, seen: r.string(node, key).rstrip("/"),
            None,
            "a Prometheus base URL, for metrics with source: prometheus",
        ),
        Key("baseline", seconds(), 300.0, "seconds before the deploy that each metric is compared with"),
        Key("watch", seconds(), 300.0, "seconds the watch runs after activation"),
        Key("key", _key_metrics, (), "the key metrics, judged after every push", table=KEY_METRIC),
    )
)


def _hosts(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[Any, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise r.fail(node, key, f"expected a list of host names or host mappings, got {show(node)}")
    if not node.value:
        raise r.fail(node, key, "the host list is empty; expected at least one host")
    hosts: list[Any] = []
    first: dict[str, int] = {}  # host name -> the line it was given on
    for i, item in enumerate(node.value):
        where = f"{key}[{i}]"
        if isinstance(item, yaml.ScalarNode):
            try:
                names = expand_hosts(r.string(item, where))
            except ValueError as exc:
                raise r.fail(item, where, f"bad host range: {exc}") from None
            new = [r.table(None, where, HOST, seen, preset={"name": n}) for n in names]
        else:
            new = [r.table(item, where, HOST, seen)]
        for host in new:
            if not NAME.match(host.name):
                raise r.fail(
                    item, where, f"expected a host name of letters, digits, '.', '_' or '-', got {host.name!r}"
                )
            if host.name in first:
                raise r.fail(item, where, f"duplicate host {host.name!r} (first given at line {first[host.name]})")
            first[host.name] = item.start_mark.line + 1
            hosts.append(host)
    return tuple(hosts)


def _health(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Any:
    """A URL or command template, or a mapping with exactly one of url or command."""
    if isinstance(node, yaml.ScalarNode):
        check = _template(r, node, key, seen)
        kind = "url" if check.startswith(("http://", "https://")) else "command"
        return r.table(None, key, HEALTH, seen, preset={kind: check})
    if len(r.mapping(node, key, HEALTH.allowed)) != 1:
        raise r.fail(node, key, "expected exactly one of url or command")
    return r.table(node, key, HEALTH, seen)


TOP = Table(
    (
        Key("environment", text(NAME), REQUIRED, "a name shown everywhere (letters, digits, . _ -)"),
        Key("repo", _repo, REQUIRED, "trunk: a git URL or path (relative paths are relative to the inventory)"),
        Key("branch", text(), "main", "the branch that is trunk"),
        Key("deploy_path", _absolute, "/srv/www", "where releases live on every host (a host may override it)"),
        Key(
            "state_dir",
            _state_dir,
            Derived(lambda seen: Path(os.path.expanduser(f"~/.local/state/deploy-console/{seen['environment']}"))),
            "lock, history, event logs, checkout, builds; default ~/.local/state/deploy-console/ENVIRONMENT",
        ),
        Key("ssh", section(SSH), REQUIRED, "how to log in to every host", table=SSH),
        Key("vars", _vars, Derived(lambda seen: {}), "free-form values for command and URL templates"),
        Key("hosts", _hosts, REQUIRED, "host names, ranges like web[001:050], or host mappings", table=HOST),
        Key(
            "assets",
            lambda r, node, key, seen: r.string(node, key).strip("/"),
            "assets",
            "the repo's assets directory, built into content-hashed names",
        ),
        Key(
            "build.command",
            text(),
            None,
            "runs in the exported release tree before assets are hashed",
            field="build_command",
        ),
        Key("restart", _template, None, "a command run on each host after the switch"),
        Key("health", _health, None, "how verify proves a host serves the new revision", table=HEALTH),
        Key("keep_releases", integer(2), 5, "releases kept on each host, never removing current or previous"),
        Key("strategy", choice("chunked"), "chunked", "the fanout strategy"),
        Key("chunk_size", integer(1, 1000), 10, "hosts in parallel within a chunk, one chunk after another"),
        Key("max_failures", _max_failures, "0", "hosts that may fail: a count (2) or a percent (10%)"),
        Key("timeouts", section(TIMEOUTS), SECTION, "seconds per host, per kind of step", table=TIMEOUTS),
        Key(
            "review.trailer",
            lambda r, node, key, seen: r.string(node, key).rstrip(":"),
            "Reviewed-by",
            "a commit is approved when its message carries this git trailer",
            field="review_trailer",
        ),
        Key("ddl.paths", strings(), DEFAULT_DDL_PATHS, "files whose change flags a commit as DDL", field="ddl_paths"),
        Key("metrics", section(METRICS), SECTION, "where key metrics come from, and the watch", table=METRICS),
        Key(
            "notify.webhooks",
            _webhooks,
            (),
            "URLs that get a JSON POST on start, finish, failure and final watch verdicts",
            field="webhooks",
        ),
    )
)
