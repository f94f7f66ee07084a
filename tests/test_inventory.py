"""Inventory loading: every kind of mistake is one line naming file, line, key and expectation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from console.config.inventory import (
    Health,
    Host,
    Inventory,
    KeyMetric,
    Metrics,
    Secret,
    SSHSettings,
    Timeouts,
    load_inventory,
)
from console.config.keys import HEALTH, HOST, KEY_METRIC, METRICS, SECRET, SSH, TIMEOUTS, TOP, expand_hosts
from console.config.reader import Table
from console.core.errors import ConsoleError

EXAMPLE = Path(__file__).resolve().parent.parent / "hosts" / "example-production.yaml"

GOOD = """\
environment: production
repo: /srv/git/shop.git
branch: main
deploy_path: /srv/www
ssh:
  user: deploy
  key: key
  known_hosts: known_hosts
vars: {{http_port: 8080}}
hosts:
  - web[001:003].example.com
  - name: web051
    address: 198.18.1.52
    port: 2222
    vars: {{http_port: 8081}}
restart: kill -HUP {{http_port}}
health: http://{{address}}:{{http_port}}/health
max_failures: 10%
{extra}"""


@pytest.fixture
def write(tmp_path: Path):
    (tmp_path / "key").write_text("not really a key\n")
    (tmp_path / "key").chmod(0o600)
    (tmp_path / "known_hosts").write_text("")

    def write(text: str) -> Path:
        path = tmp_path / "inv.yaml"
        path.write_text(text)
        return path

    return write


def error_of(path: Path) -> str:
    with pytest.raises(ConsoleError) as err:
        load_inventory(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_good_inventory_loads_with_its_defaults(write):
    inv = load_inventory(write(GOOD.format(extra="")))
    assert [h.name for h in inv.hosts] == ["web001.example.com", "web002.example.com", "web003.example.com", "web051"]
    assert inv.hosts[0].address == "web001.example.com" and inv.hosts[0].port == 22
    assert inv.hosts[3].vars["http_port"] == 8081 and inv.hosts[0].vars["http_port"] == 8080
    assert inv.chunk_size == 10 and inv.keep_releases == 5 and inv.strategy == "chunked"
    assert inv.allowed_failures() == 0 and inv.allowed_failures(20) == 2
    assert inv.health.url.startswith("http://")


def test_branch_defaults_to_main(write):
    text = GOOD.format(extra="").replace("branch: main\n", "")
    assert load_inventory(write(text)).branch == "main"


@pytest.mark.parametrize(
    "change, expected",
    [
        (("port: 2222", "port: ssh"), ":14: hosts[1].port: expected an integer from 1 to 65535, got 'ssh'"),
        (("  user: deploy", "  usr: deploy"), ":6: ssh.usr: unknown key; expected one of: key, known_hosts, user"),
        (
            ("web[001:003]", "web[003:001]"),
            ":11: hosts[0]: bad host range: range [003:001] in 'web[003:001].example.com' runs backwards",
        ),
        (("web[001:003]", "web[001:0x3]"), "hosts[0]: bad host range: range [001:0x3]"),
        (
            ("name: web051", "name: web002.example.com"),
            ":12: hosts[1]: duplicate host 'web002.example.com' (first given at line 11)",
        ),
        (("key: key", "key: missing"), ":7: ssh.key: cannot read the private key file"),
        (("chunk_size: 10", "chunk_size: 0"), "chunk_size: expected an integer from 1 to 1000, got 0"),
        (
            ("max_failures: 10%", "max_failures: lots"),
            "max_failures: expected a host count like 2 or a percent like 10%, got 'lots'",
        ),
        (
            ("kill -HUP {http_port}", "kill -HUP {pid}"),
            ":16: restart: placeholder {pid} is not set for host web001.example.com",
        ),
        (
            ("deploy_path: /srv/www", "deploy_path: srv/www"),
            ":4: deploy_path: expected an absolute path, got 'srv/www'",
        ),
    ],
)
def test_each_mistake_is_one_line_with_file_line_and_key(write, change, expected):
    old, new = change
    text = GOOD.format(extra="chunk_size: 10\n")
    assert old in text
    message = error_of(write(text.replace(old, new, 1)))
    assert "inv.yaml" in message
    assert expected in message


def test_an_empty_host_list_and_missing_keys(write):
    assert "hosts: the host list is empty" in error_of(
        write(GOOD.format(extra="").split("\nhosts:")[0] + "\nhosts: []\n")
    )
    assert "environment: required key is missing" in error_of(
        write(GOOD.format(extra="").replace("environment: production\n", ""))
    )
    assert "not valid YAML" in error_of(write("environment: [\n"))
    assert "the inventory is empty" in error_of(write(""))


def test_ranges_expand_with_padding():
    assert expand_hosts("web[08:10]") == ["web08", "web09", "web10"]
    assert expand_hosts("r[1:2]-h[1:2]") == ["r1-h1", "r1-h2", "r2-h1", "r2-h2"]
    with pytest.raises(ValueError):
        expand_hosts("web[1:2")


def test_the_example_inventory_is_valid(tmp_path: Path):
    """hosts/example-production.yaml documents every key; it must load (with a real key file)."""
    (tmp_path / "k").write_text("k")
    (tmp_path / "k").chmod(0o600)
    (tmp_path / "kh").write_text("")
    (tmp_path / "pw").write_text("a db password\n")
    (tmp_path / "pw").chmod(0o600)
    text = (
        EXAMPLE.read_text()
        .replace("~/.ssh/deploy_ed25519", str(tmp_path / "k"))
        .replace("~/.ssh/known_hosts", str(tmp_path / "kh"))
        .replace("~/.config/deploy-console/db_password", str(tmp_path / "pw"))
    )
    inv = load_inventory(_put(tmp_path / "example.yaml", text))
    assert len(inv.hosts) == 51 and inv.metrics.key[0].limit == 0.2 and inv.webhooks


def declared_keys(table: Table, where: str = "") -> set[str]:
    """Every key of `table` and of the tables below it, as dotted paths (`hosts.port`)."""
    keys: set[str] = set()
    for key in table.keys:
        keys.add(where + key.name)
        if key.table is not None:
            keys |= declared_keys(key.table, f"{where}{key.name}.")
    return keys


def documented_keys(node: yaml.Node, table: Table, where: str, lines: list[str]) -> set[str]:
    """Every key the example gives, as dotted paths. A key given in its short form
    (`health: URL`) documents the keys of its long form by naming them in its comments
    (`{url: URL}`)."""
    if isinstance(node, yaml.SequenceNode):
        return set().union(*(documented_keys(item, table, where, lines) for item in node.value))
    if not isinstance(node, yaml.MappingNode):
        return set()
    keys: set[str] = set()
    starts = [k.start_mark.line for k, _ in node.value[1:]] + [node.end_mark.line + 1]
    for (k, value), end in zip(node.value, starts, strict=True):
        path = where + k.value
        inner = [key for key in table.keys if key.name.startswith(k.value + ".")]
        if inner and isinstance(value, yaml.MappingNode):
            keys |= {f"{path}.{sub.value}" for sub, _ in value.value}
            continue
        keys.add(path)
        key = next((key for key in table.keys if key.name == k.value), None)
        if key is None or key.table is None:
            continue
        if isinstance(value, yaml.ScalarNode):
            comments = " ".join(line.partition("#")[2] for line in lines[k.start_mark.line : end])
            keys |= {f"{path}.{sub.name}" for sub in key.table.keys if f"{{{sub.name}:" in comments}
        else:
            keys |= documented_keys(value, key.table, path + ".", lines)
    return keys


def test_the_example_documents_every_key_and_no_other():
    """The tables in console/config/keys.py and hosts/example-production.yaml name the same keys."""
    text = EXAMPLE.read_text()
    documented = documented_keys(yaml.compose(text), TOP, "", text.splitlines())
    declared = declared_keys(TOP)
    assert sorted(declared - documented) == [], "declared in console/config/keys.py, missing from the example"
    assert sorted(documented - declared) == [], "in the example, but no table declares them"
    assert {"build.command", "hosts.port", "metrics.key.dry_run", "health.command"} <= documented


@pytest.mark.parametrize(
    "table, cls",
    [
        (TOP, Inventory),
        (SSH, SSHSettings),
        (HOST, Host),
        (HEALTH, Health),
        (TIMEOUTS, Timeouts),
        (METRICS, Metrics),
        (KEY_METRIC, KeyMetric),
        (SECRET, Secret),
    ],
)
def test_each_table_fills_the_fields_of_its_dataclass(table, cls):
    assert sorted(key.attr for key in table.keys) == sorted(f.name for f in dataclasses.fields(cls) if f.name != "path")


def _put(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_cli_reports_a_bad_inventory_in_one_line(write):
    path = write(GOOD.format(extra="").replace("port: 2222", "port: ssh"))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "status", "-i", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}:14: hosts[1].port: expected an integer from 1 to 65535, got 'ssh'"
    ]
