"""Every inventory key, declared once: one table per section.

Each row is a `Key`: its name, the check that reads it, its default and a one-line doc.
The tables drive everything about a key: which keys a section allows and requires, how
each is validated, and its default (the dataclasses of `console.config.inventory` take
their field defaults from here). `hosts/example-production.yaml` documents every key of
these tables, and holds no other; `tests/test_inventory.py` checks both directions.

Tables are read top to bottom, so a check may use the keys above it: hosts inherit the
fleet's `deploy_path` and `vars`, and `restart` and `health` are checked against every host
and the secrets.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from console.config import templates
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
from console.core.text import safe_url

#: Files whose change marks a commit as DDL (with CREATE/ALTER/DROP/RENAME TABLE|INDEX lines).
DEFAULT_DDL_PATHS: tuple[str, ...] = ("**/*.sql", "migrations/**", "schema/**")

#: The backends a key metric may read (`console.metrics.backends` makes one of each).
METRIC_SOURCES: tuple[str, ...] = ("statsd", "prometheus")

#: The most hosts one inventory may name (a range typo must not expand into millions).
MAX_HOSTS = 10_000

_RANGE = re.compile(r"\[([^\]]*)\]")
#: What ssh and rsync are given as a host: a DNS name (or an IP address, checked apart).
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
#: A deploy path: absolute, of characters that ssh's remote shell and rsync read alike.
_DEPLOY_PATH = re.compile(r"(/[A-Za-z0-9_.+@-]+)+\Z")
#: A git branch name as trunk is named (no `..`, no leading `-`, see git-check-ref-format).
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _ranges(pattern: str) -> list[tuple[int, int, int, int, int]]:
    """(start, end, zero-padding width, span start, span end) of each range in `pattern`."""
    found = []
    for match in _RANGE.finditer(pattern):
        body = match.group(1)
        parts = body.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"range [{body}] in {pattern!r} must be [START:END] with digits")
        start, end = int(parts[0]), int(parts[1])
        if start > end:
            raise ValueError(f"range [{body}] in {pattern!r} runs backwards")
        width = len(parts[0]) if parts[0].startswith("0") else 0
        found.append((start, end, width, match.start(), match.end()))
    if "[" in _RANGE.sub("", pattern) or "]" in _RANGE.sub("", pattern):
        raise ValueError(f"unbalanced brackets in {pattern!r}")
    return found


def expand_hosts(pattern: str, limit: int = MAX_HOSTS) -> list[str]:
    """`web[001:050].example.com` -> web001.example.com ... web050.example.com.

    The width of the start number sets the zero padding; several ranges multiply, to at
    most `limit` names (counted before any is made). Raises ValueError with what is
    wrong, for the loader to place in the file.
    """
    ranges = _ranges(pattern)
    count = math.prod(end - start + 1 for start, end, *_ in ranges)
    if count > limit:
        raise ValueError(f"{pattern!r} expands to {count} hosts; expected at most {limit} hosts in an inventory")
    names = [""]
    last = 0
    for start, end, width, begin, finish in ranges:
        head = pattern[last:begin]
        names = [f"{name}{head}{str(i).zfill(width)}" for name in names for i in range(start, end + 1)]
        last = finish
    return [name + pattern[last:] for name in names]


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8125` for IPv6) as (host, port); ValueError says what is wrong."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


# -- checks of single keys ---------------------------------------------------------------------


def _deploy_path(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    """An absolute path below `/`, without `.` or `..` parts, of letters, digits and
    `_ . + @ -` (a trailing `/` is dropped): what ssh's shell and rsync read the same way."""
    path = r.string(node, key)
    trimmed = path.rstrip("/")
    parts = trimmed.split("/")[1:]
    if not path.startswith("/"):
        raise r.fail(node, key, f"expected an absolute path, got {path!r}")
    if not _DEPLOY_PATH.match(trimmed) or any(p in (".", "..") for p in parts):
        raise r.fail(
            node,
            key,
            f"expected an absolute path below / of letters, digits and _ . + @ - (no . or .. parts), got {path!r}",
        )
    return trimmed


def _address(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    """A host name or an IP address: nothing ssh or rsync could read as an option, a user or a path."""
    address = r.string(node, key)
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    if not _HOSTNAME.match(address):
        raise r.fail(node, key, f"expected a host name (letters, digits, . _ -) or an IP address, got {address!r}")
    return address


def _repo(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    repo = r.string(node, key)
    if repo.startswith("-") or repo != repo.strip():
        raise r.fail(node, key, f"expected a git URL or path, got {repo!r}")
    if "://" not in repo and not repo.startswith(("git@", "/")) and ":" not in repo:
        return str(r.base / repo)
    return repo


def _branch(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    branch = r.string(node, key)
    if not _BRANCH.match(branch) or ".." in branch or branch.endswith((".lock", "/", ".")) or "//" in branch:
        raise r.fail(node, key, f"expected a git branch name (letters, digits, _ . / -), got {branch!r}")
    return branch


def _local_path(r: Reader, node: yaml.Node, key: str) -> Path:
    path = Path(os.path.expanduser(r.string(node, key)))
    return path if path.is_absolute() else r.base / path


def _state_dir(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    return _local_path(r, node, key)


def _private_file(r: Reader, node: yaml.Node, key: str, path: Path, what: str) -> os.stat_result:
    """A readable regular file of this user that nobody else may read (what ssh asks of a key)."""
    if not os.access(path, os.R_OK) or not path.is_file():
        raise r.fail(node, key, f"cannot read the {what} {path}")
    st = path.stat()
    if st.st_mode & 0o077:
        raise r.fail(
            node, key, f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: a {what} must be private (chmod 600 {path})"
        )
    if st.st_uid != os.getuid():
        raise r.fail(node, key, f"{path} belongs to uid {st.st_uid}: a {what} must be your own")
    return st


def _private_key(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    path = _local_path(r, node, key)
    public = f"{path} is a public key: expected the private key file (without .pub)"
    if path.suffix == ".pub":
        raise r.fail(node, key, public)
    _private_file(r, node, key, path, "private key file")
    with open(path, "rb") as f:
        if f.read(64).startswith((b"ssh-", b"ecdsa-", b"sk-")):
            raise r.fail(node, key, public)
    return path


def _known_hosts(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    path = _local_path(r, node, key)
    if not os.access(path, os.R_OK) or not path.is_file():
        raise r.fail(node, key, f"cannot read the known_hosts file {path}; host keys are always verified")
    return path


def _vars(r: Reader, node: yaml.Node, key: str, seen: Scope) -> dict[str, Any]:
    """Free-form values; a host's override the fleet's (read before them)."""
    return {**seen.get("vars", {}), **r.plain(node, key)}


def _template(r: Reader, node: yaml.Node, key: str, seen: Scope, *, url: bool = False) -> str:
    """A command (or URL) template of plain {placeholders}, each naming a field or var of
    every host (or a secret, in a command), rendering to at most MAX_COMMAND characters."""
    template = r.string(node, key)
    try:
        names = templates.placeholders(template)
    except ValueError as exc:
        raise r.fail(node, key, str(exc)) from None
    secrets = {s.name for s in seen["secrets"]}
    for host in seen["hosts"]:
        fields = host.fields()
        for name in names:
            if name in fields:
                continue
            if name in secrets and url:
                raise r.fail(
                    node, key, f"secret {{{name}}} in a URL: URLs are shown in messages; use health.command instead"
                )
            if name not in secrets:
                known = ", ".join(sorted([*fields, *secrets]))
                raise r.fail(
                    node, key, f"placeholder {{{name}}} is not set for host {host.name}; expected one of: {known}"
                )
        if not url:
            length = len(templates.shell_command(template, fields, secrets)[0])
            if length > templates.MAX_COMMAND:
                raise r.fail(
                    node,
                    key,
                    f"renders to {length} characters for host {host.name}; expected at most {templates.MAX_COMMAND}",
                )
    return template


def _url_template(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    url = _template(r, node, key, seen, url=True)
    if not url.startswith(("http://", "https://")):
        raise r.fail(node, key, f"expected an http:// URL template, got {url!r}")
    return url


def _url(r: Reader, node: yaml.Node, key: str, value: str) -> str:
    """An http(s) URL with a host and nothing a URL may not hold (spaces)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:
        ok = False
    if not ok or any(ch.isspace() for ch in value):
        raise r.fail(
            node, key, f"expected an http:// or https:// URL with a host and no spaces, got {safe_url(value)!r}"
        )
    return value


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
        _url(r, node.value[i], f"{key}[{i}]", url)
    return hooks


def _connect(r: Reader, node: yaml.Node, key: str, seen: Scope) -> float:
    """Whole seconds: ssh's ConnectTimeout takes no fractions (0.5 would become 0, no limit)."""
    value = r.seconds(node, key)
    if value != int(value):
        raise r.fail(node, key, f"expected a whole number of seconds (ssh's ConnectTimeout), got {value:g}")
    return value


def _secret_env(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    name = r.string(node, key)
    if not _ENV_NAME.match(name):
        raise r.fail(node, key, f"expected an environment variable name (letters, digits, _), got {name!r}")
    return name


def _secret_file(r: Reader, node: yaml.Node, key: str, seen: Scope) -> Path:
    path = _local_path(r, node, key)
    _private_file(r, node, key, path, "secret file")
    return path


def _secret_name(r: Reader, node: yaml.Node, key: str, seen: Scope) -> str:
    name = r.string(node, key)
    if not templates.PLACEHOLDER.match(name):
        raise r.fail(node, key, f"expected a placeholder name (letters, digits, _), got {name!r}")
    taken = {"name", "address", "port", "deploy_path", *seen["vars"]}
    if name in taken:
        raise r.fail(node, key, f"{name!r} is a host field or a var already: expected a name of its own")
    return name


# -- the tables ------------------------------------------------------------------------------

SSH = Table(
    (
        Key("user", text(NAME), REQUIRED, "the user ssh logs in as on every host"),
        Key("key", _private_key, REQUIRED, "the private key file (yours, mode 0600, not the .pub)"),
        Key("known_hosts", _known_hosts, REQUIRED, "host keys are verified against this file only"),
    )
)

HOST = Table(
    (
        Key("name", text(NAME), REQUIRED, "what people see (letters, digits, . _ -)"),
        Key(
            "address",
            _address,
            Derived(lambda seen: seen["name"]),
            "what ssh connects to (a name or IP); default: the name",
        ),
        Key("port", integer(1, 65535), 22, "the ssh port"),
        Key(
            "deploy_path",
            _deploy_path,
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
        Key("connect", _connect, 5.0, "whole seconds to open a host's ssh connection"),
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


SECRET = Table(
    (
        Key("name", _secret_name, REQUIRED, "the {placeholder} command templates use"),
        Key("env", _secret_env, None, "the environment variable that holds the value"),
        Key("file", _secret_file, None, "or the file that holds it (yours, mode 0600)"),
    )
)


def _secrets(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[Any, ...]:
    """Named values from the environment or a private file, never from the inventory itself."""
    out: list[Any] = []
    first: dict[str, int] = {}
    for i, item in enumerate(r.items(node, key, "secrets")):
        where = f"{key}[{i}]"
        if not isinstance(item, yaml.MappingNode):
            raise r.fail(
                item,
                where,
                "expected {name: NAME, env: VARIABLE} or {name: NAME, file: PATH}; a secret's value "
                "is never written in the inventory",
            )
        given = r.mapping(item, where, SECRET.allowed, set(SECRET.required))
        if ("env" in given) == ("file" in given):
            raise r.fail(item, where, "expected exactly one of env or file")
        secret = r.table(item, where, SECRET, seen)
        if secret.name in first:
            raise r.fail(item, where, f"duplicate secret {secret.name!r} (first given at line {first[secret.name]})")
        first[secret.name] = item.start_mark.line + 1
        out.append(secret)
    return tuple(out)


def _key_metrics(r: Reader, node: yaml.Node, key: str, seen: Scope) -> tuple[Any, ...]:
    items = r.items(node, key, "key metrics")
    return tuple(r.table(item, f"{key}[{i}]", KEY_METRIC, seen) for i, item in enumerate(items))


METRICS = Table(
    (
        Key("statsd", _statsd, ("127.0.0.1", 8125), "HOST:PORT the embedded StatsD collector listens on"),
        Key(
            "prometheus",
            lambda r, node, key, seen: _url(r, node, key, r.string(node, key)).rstrip("/"),
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
    places: dict[tuple[str, int, str], str] = {}  # (address, port, deploy_path) -> the host there
    secrets = {s.name for s in seen["secrets"]}
    for i, item in enumerate(node.value):
        where = f"{key}[{i}]"
        if isinstance(item, yaml.ScalarNode):
            try:
                names = expand_hosts(r.string(item, where), MAX_HOSTS - len(hosts))
            except ValueError as exc:
                raise r.fail(item, where, f"bad host range: {exc}") from None
            for name in names:
                if not NAME.match(name):
                    raise r.fail(item, where, f"expected a host name of letters, digits, '.', '_' or '-', got {name!r}")
            new = [r.table(None, where, HOST, seen, preset={"name": n}) for n in names]
        else:
            new = [r.table(item, where, HOST, seen)]
            if len(hosts) >= MAX_HOSTS:
                raise r.fail(item, where, f"more than {MAX_HOSTS} hosts; expected at most {MAX_HOSTS} in an inventory")
        for host in new:
            if host.name in first:
                raise r.fail(item, where, f"duplicate host {host.name!r} (first given at line {first[host.name]})")
            place = (host.address, host.port, host.deploy_path)
            if place in places:
                raise r.fail(
                    item,
                    where,
                    f"host {host.name!r} is the same host as {places[place]!r} "
                    f"({host.address} port {host.port}, {host.deploy_path}): two deploys would race on it",
                )
            clash = sorted(secrets & set(host.vars))
            if clash:
                raise r.fail(item, where, f"var {clash[0]!r} of host {host.name!r} is also a secret's name")
            first[host.name] = item.start_mark.line + 1
            places[place] = host.name
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
        Key("branch", _branch, "main", "the branch that is trunk"),
        Key("deploy_path", _deploy_path, "/srv/www", "where releases live on every host (a host may override it)"),
        Key(
            "state_dir",
            _state_dir,
            Derived(lambda seen: Path(os.path.expanduser(f"~/.local/state/deploy-console/{seen['environment']}"))),
            "lock, history, event logs, checkout, builds; default ~/.local/state/deploy-console/ENVIRONMENT",
        ),
        Key("ssh", section(SSH), REQUIRED, "how to log in to every host", table=SSH),
        Key("vars", _vars, Derived(lambda seen: {}), "free-form values for command and URL templates"),
        Key("secrets", _secrets, (), "named values from the environment or a private file", table=SECRET),
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
        Key(
            "strategy",
            choice("chunked", "tree"),
            "chunked",
            "the fanout strategy: chunked (every host by rsync from the push host) or tree "
            "(a large change relayed host to host, console/pipeline/distribute.py)",
        ),
        Key(
            "tree.port",
            integer(1024, 65000),
            7470,
            "strategy tree: the first of the ports a host listens on for its feeder, one per stripe",
            field="tree_port",
        ),
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
