"""Bad input, table-driven: every case is one line on stderr naming the file and line, the
key or the flag, exit code 1, no traceback, and no host's `current` changed.

The cases are what a hostile or careless person tried (issue 12): inventories with bad
addresses, names, paths, templates, tags, encodings, ranges, timeouts, key files, secrets
and URLs; flags that are empty, out of range or exclude each other; refs, reasons and
display names with control characters; damaged state (history, lock). Each runs the real
task (`invoke ...`, in this process for speed: invoke's own Program with the repository's
tasks) against a two-host lab that has a release live, and the hosts' `current` links are
read before and after (the lab keeps each host's deploy path in a directory of its own).
A few run as real processes too, and `invoke lab.status | head` ends quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.lab import state as labstate
from support.cli import ROOT, run_invoke
from support.fleet import Fleet, deploy, make_fleet

pytestmark = pytest.mark.lab
HOSTS = 2


@pytest.fixture(scope="module")
def fleet(lab_factory, tmp_path_factory) -> Fleet:
    fleet = make_fleet(lab_factory, HOSTS, tmp_path_factory.mktemp("bad-input"))
    assert deploy(fleet.inventory()).result == "ok"
    return fleet


def current_links(fleet: Fleet) -> dict[str, str]:
    """Each host's `current` link, read from the lab's directory for its deploy path."""
    st = labstate.require(fleet.lab.name)
    return {name: os.readlink(st.host(name).www / "current") for name in fleet.hosts}


# -- the cases ------------------------------------------------------------------------------

Doc = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One bad input: `argv` of invoke (`{inv}` is the inventory's path), how the inventory
    differs from the fleet's (`change` edits its document, `raw` replaces its text), the
    environment, a `setup` of the state directory, and a piece of the one line expected
    (which names the key, the flag or the file)."""

    id: str
    argv: tuple[str, ...]
    expected: str
    change: Callable[[Doc], None] | None = None
    raw: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path, Path], Callable[[], None] | None] | None = None  # (state dir, work dir) -> undo
    own_state: bool = False  # a state directory of its own (the case damages it)


def top(**keys: Any) -> Callable[[Doc], None]:
    return lambda doc: doc.update(keys)


def host(**keys: Any) -> Callable[[Doc], None]:
    return lambda doc: doc["hosts"][0].update(keys)


def nested(section: str, **keys: Any) -> Callable[[Doc], None]:
    return lambda doc: doc.setdefault(section, {}).update(keys)


def twin(doc: Doc) -> None:
    doc["hosts"].append({**doc["hosts"][0], "name": "web-twin"})


def public_key(doc: Doc) -> None:
    doc["ssh"]["key"] += ".pub"


def mode(path_of: Callable[[Doc], str], bits: int) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        Path(path_of(doc)).chmod(bits)

    return change


def copy_key(doc: Doc) -> None:
    """The key is copied (the lab's own keeps its mode): `mode` then loosens the copy."""
    copy = Path(doc["state_dir"]).parent / f"key-{os.getpid()}"
    copy.write_bytes(Path(doc["ssh"]["key"]).read_bytes())
    doc["ssh"]["key"] = str(copy)


def loose_key(doc: Doc) -> None:
    copy_key(doc)
    Path(doc["ssh"]["key"]).chmod(0o644)


def secret_file(doc: Doc, bits: int = 0o600) -> str:
    path = Path(doc["state_dir"]).parent / "secret.txt"
    path.write_text("a long enough secret\n")
    path.chmod(bits)
    return str(path)


def secrets(*entries: Callable[[Doc], dict[str, Any]] | dict[str, Any] | str) -> Callable[[Doc], None]:
    return lambda doc: doc.update(secrets=[e(doc) if callable(e) else e for e in entries])


def remove(key: str) -> Callable[[Doc], None]:
    return lambda doc: doc.pop(key)


GOOD = "environment: x\nrepo: /r\nssh: {user: u, key: /k, known_hosts: /kh}\nhosts: [web01]\n"

INVENTORY_CASES = [
    Case("address-shell", ("deploy",), "hosts[0].address: expected a host name", host(address="198.18.0.2;touch x")),
    Case("address-option", ("deploy",), "hosts[0].address: expected a host name", host(address="-oProxyCommand=sh")),
    Case("address-space", ("deploy",), "hosts[0].address: expected a host name", host(address="198.18.0.2 x")),
    Case("address-user", ("deploy",), "hosts[0].address: expected a host name", host(address="root@198.18.0.2")),
    Case("address-newline", ("deploy",), "hosts[0].address: expected text without control", host(address="web\n")),
    Case("name-newline", ("deploy",), "hosts[0].name: expected text without control characters", host(name="web01\n")),
    Case("name-slash", ("deploy",), "hosts[0].name: expected letters, digits", host(name="web/01")),
    Case("environment-newline", ("deploy",), "environment: expected text without control", top(environment="lab\n")),
    Case("environment-slash", ("deploy",), "environment: expected letters, digits", top(environment="a/b")),
    Case("same-host-twice", ("deploy",), "is the same host as", twin),
    Case(
        "deploy-path-newline", ("deploy",), "deploy_path: expected text without control", top(deploy_path="/srv/www\n")
    ),
    Case("deploy-path-root", ("deploy",), "deploy_path: expected an absolute path below /", top(deploy_path="/")),
    Case(
        "deploy-path-dotdot",
        ("deploy",),
        "deploy_path: expected an absolute path below /",
        top(deploy_path="/srv/../etc"),
    ),
    Case("deploy-path-relative", ("deploy",), "deploy_path: expected an absolute path", top(deploy_path="srv/www")),
    Case(
        "deploy-path-space",
        ("deploy",),
        "deploy_path: expected an absolute path below /",
        top(deploy_path="/srv/my www"),
    ),
    Case(
        "host-deploy-path", ("deploy",), "hosts[0].deploy_path: expected an absolute path", host(deploy_path="/srv/;x")
    ),
    Case(
        "template-attribute",
        ("deploy",),
        "restart: placeholder {name.__class__} is not a plain",
        top(restart="echo {name.__class__}"),
    ),
    Case("template-format", ("deploy",), "restart: placeholder {port:d} is not a plain", top(restart="echo {port:d}")),
    Case(
        "template-width", ("deploy",), "restart: placeholder {name:>999999999}", top(restart="echo {name:>999999999}")
    ),
    Case("template-index", ("deploy",), "restart: placeholder {0} is not a plain", top(restart="echo {0}")),
    Case(
        "template-conversion", ("deploy",), "restart: placeholder {name!r} is not a plain", top(restart="echo {name!r}")
    ),
    Case("template-unknown", ("deploy",), "restart: placeholder {pid} is not set for host", top(restart="kill {pid}")),
    Case("template-brace", ("deploy",), "restart: bad template", top(restart="echo {")),
    Case("template-long", ("deploy",), "restart: renders to 5", top(vars={"blob": "x" * 5000}, restart="echo {blob}")),
    Case(
        "health-attribute",
        ("deploy",),
        "health.url: placeholder {address.real}",
        top(health={"url": "http://{address.real}/"}),
    ),
    Case(
        "health-scheme",
        ("deploy",),
        "health.url: expected an http:// URL template",
        top(health={"url": "ftp://{address}/"}),
    ),
    Case(
        "tag-python-name",
        ("deploy",),
        ":5: restart: YAML tag '!!python/name:os.system' is not allowed",
        raw=GOOD.encode() + b"restart: !!python/name:os.system\n",
    ),
    Case(
        "tag-python-apply",
        ("deploy",),
        "YAML tag '!!python/object/apply:os.system' is not allowed",
        raw=GOOD.encode() + b"vars: {x: !!python/object/apply:os.system [id]}\n",
    ),
    Case("tag-custom", ("deploy",), "YAML tag '!env' is not allowed", raw=GOOD.encode() + b"branch: !env BRANCH\n"),
    Case("not-utf8", ("deploy",), ":3: not UTF-8 (byte 0xff)", raw=b"environment: x\nrepo: /r\nbranch: ma\xffin\n"),
    Case("not-yaml", ("deploy",), "not valid YAML", raw=b"environment: [\n"),
    Case("empty-file", ("deploy",), "the inventory is empty", raw=b""),
    Case(
        "range-huge",
        ("deploy",),
        "hosts[0]: bad host range: 'web[0:99999999]' expands to 100000000 hosts",
        top(hosts=["web[0:99999999]"]),
    ),
    Case("range-backwards", ("deploy",), "hosts[0]: bad host range: range [9:1]", top(hosts=["web[9:1]"])),
    Case("range-letters", ("deploy",), "hosts[0]: bad host range: range [1:x]", top(hosts=["web[1:x]"])),
    Case("range-unbalanced", ("deploy",), "hosts[0]: bad host range: unbalanced brackets", top(hosts=["web[1:3"])),
    Case(
        "connect-fraction",
        ("deploy",),
        "timeouts.connect: expected a whole number of seconds",
        nested("timeouts", connect=0.5),
    ),
    Case(
        "connect-zero",
        ("deploy",),
        "timeouts.connect: expected a positive number of seconds",
        nested("timeouts", connect=0),
    ),
    Case(
        "command-negative",
        ("deploy",),
        "timeouts.command: expected a positive number of seconds",
        nested("timeouts", command=-1),
    ),
    Case("key-public", ("deploy",), "ssh.key: ", public_key),  # expected: "... is a public key" (checked below)
    Case("key-mode", ("deploy",), "ssh.key: ", loose_key),  # "... has mode 0644"
    Case(
        "key-missing", ("deploy",), "ssh.key: cannot read the private key file", nested("ssh", key="/nonexistent/key")
    ),
    Case(
        "known-hosts-missing",
        ("deploy",),
        "ssh.known_hosts: cannot read the known_hosts file",
        nested("ssh", known_hosts="/nonexistent"),
    ),
    Case("port-zero", ("deploy",), "hosts[0].port: expected an integer from 1 to 65535, got 0", host(port=0)),
    Case("port-word", ("deploy",), "hosts[0].port: expected an integer from 1 to 65535, got 'ssh'", host(port="ssh")),
    Case("chunk-zero", ("deploy",), "chunk_size: expected an integer from 1 to 1000, got 0", top(chunk_size=0)),
    Case("max-failures-word", ("deploy",), "max_failures: expected a host count", top(max_failures="lots")),
    Case("max-failures-percent", ("deploy",), "max_failures: expected a host count", top(max_failures="101%")),
    Case("unknown-key", ("deploy",), "restrat: unknown key; expected one of:", top(restrat="true")),
    Case(
        "key-twice",
        ("deploy",),
        ":6: chunk_size: key given twice",
        raw=GOOD.encode() + b"chunk_size: 1\nchunk_size: 2\n",
    ),
    Case("repo-missing", ("deploy",), "repo: required key is missing", remove("repo")),
    Case("hosts-empty", ("deploy",), "hosts: the host list is empty", top(hosts=[])),
    Case(
        "secret-inline",
        ("deploy",),
        "secrets[0].value: unknown key; expected one of: env, file, name",
        secrets({"name": "token", "value": "hunter2hunter2"}),
    ),
    Case("secret-scalar", ("deploy",), "secrets[0]: expected {name: NAME, env: VARIABLE}", secrets("hunter2hunter2")),
    Case(
        "secret-file-mode",
        ("deploy",),
        "secrets[0].file: ",
        secrets(lambda doc: {"name": "t", "file": secret_file(doc, 0o644)}),
    ),
    Case(
        "secret-env-and-file",
        ("deploy",),
        "secrets[0]: expected exactly one of env or file",
        secrets(lambda doc: {"name": "t", "env": "T", "file": secret_file(doc)}),
    ),
    Case(
        "secret-name-var",
        ("deploy",),
        "secrets[0].name: 'http' is a host field or a var already",
        lambda doc: (doc.update(vars={"http": 1}), secrets({"name": "http", "env": "T"})(doc)),
    ),
    Case(
        "secret-in-url",
        ("deploy",),
        "health.url: secret {t} in a URL",
        lambda doc: (secrets({"name": "t", "env": "T"})(doc), doc.update(health={"url": "http://{address}/?t={t}"})),
    ),
    Case(
        "secret-env-name",
        ("deploy",),
        "secrets[0].env: expected an environment variable name",
        secrets({"name": "t", "env": "1BAD"}),
    ),
    Case(
        "webhook-space",
        ("deploy",),
        "notify.webhooks[0]: expected an http:// or https:// URL with a host and no spaces",
        top(notify={"webhooks": ["https://hooks.example.com/T0K EN"]}),
    ),
    Case(
        "webhook-scheme",
        ("deploy",),
        "notify.webhooks[0]: expected an http:// or https:// URL",
        top(notify={"webhooks": ["file:///etc/passwd"]}),
    ),
    Case("branch-dotdot", ("deploy",), "branch: expected a git branch name", top(branch="main..evil")),
    Case(
        "repo-option",
        ("deploy",),
        "repo: expected a git URL or path, got '--upload-pack=touch x'",
        top(repo="--upload-pack=touch x"),
    ),
    Case(
        "prometheus-url",
        ("deploy",),
        "metrics.prometheus: expected an http:// or https:// URL",
        nested("metrics", prometheus="localhost:9090"),
    ),
]

FLAG_CASES = [
    Case("only-empty", ("deploy", "--only", ""), "--only: expected 'failed' or host names separated by commas, got ''"),
    Case(
        "only-commas", ("deploy", "--only", ","), "--only: expected 'failed' or host names separated by commas, got ','"
    ),
    Case("only-unknown", ("deploy", "--only", "web099"), "--only: {inv}: no host named 'web099' in this inventory"),
    Case("dry-run-detach", ("deploy", "--dry-run", "--detach"), "--dry-run and --detach exclude each other"),
    Case(
        "history-limit-word",
        ("history", "--limit", "abc"),
        "--limit: expected a whole number from 1 to 100000, got 'abc'",
    ),
    Case(
        "history-limit-negative",
        ("history", "--limit", "-1"),
        "--limit: expected a whole number from 1 to 100000, got '-1'",
    ),
    Case("history-limit-zero", ("history", "--limit", "0"), "--limit: expected a whole number from 1"),
    Case("ref-unknown", ("deploy", "--ref", "no-such-branch"), "unknown ref 'no-such-branch'"),
    Case("ref-escape", ("deploy", "--ref", "main\x1b[2J"), "--ref: expected one line"),
    Case("ref-option", ("deploy", "--ref=--upload-pack=x"), "ref '--upload-pack=x' is not a valid git ref"),
    Case(
        "override-newline",
        ("deploy", "--override", "ok\n2026-01-01T00:00:00Z forged alice"),
        "--override: expected one line",
    ),
    Case(
        "override-escape",
        ("deploy", "--override", "\x1b]0;owned\x07"),
        "--override: expected one line of at most 500 characters without control",
    ),
    Case("lock-reason-empty", ("lock", "--reason", ""), "a lock needs a reason"),
    Case("lock-reason-newline", ("lock", "--reason", "a\nb"), "--reason: expected one line"),
    Case("switch-path", ("switch", "--release", "../../etc"), "release '../../etc' is not a release id"),
    Case("switch-newline", ("switch", "--release", "20261122T101500Z-ab12cd3\n"), "is not a release id"),
    Case("status-deploy-id", ("status", "--deploy", "../../etc/passwd"), "bad deploy id '../../etc/passwd'"),
    Case("status-deploy-newline", ("status", "--deploy", "x\n"), "bad deploy id 'x\\n'"),
    Case("lab-hosts-word", ("lab.up", "--hosts", "abc"), "--hosts: expected a whole number from 1, got 'abc'"),
    Case("lab-hosts-zero", ("lab.up", "--hosts", "0"), "--hosts: expected a whole number from 1, got '0'"),
    Case("demo-hosts-word", ("demo.up", "--hosts", "many"), "--hosts: expected a whole number from 1, got 'many'"),
    Case(
        "display-name-newline",
        ("deploy", "--dry-run"),
        "DEPLOY_USER (a display name): expected one line",
        env={"DEPLOY_USER": "alice\n2026 forged"},
    ),
    Case(
        "display-name-escape",
        ("lock", "--reason", "x"),
        "DEPLOY_USER (a display name): expected one line",
        env={"DEPLOY_USER": "\x1b[8mbob"},
    ),
    Case(
        "inventory-missing",
        ("deploy", "-i", "/nonexistent/inv.yaml"),
        "/nonexistent/inv.yaml: cannot read the inventory",
    ),
]


def garbage_history(state: Path, work: Path) -> None:
    (state / "history.sqlite").write_bytes(b"this is not a database" * 100)


def empty_history(state: Path, work: Path) -> None:
    (state / "history.sqlite").unlink()
    (state / "history.sqlite").write_bytes(b"")


def truncated_history(state: Path, work: Path) -> None:
    path = state / "history.sqlite"
    data = path.read_bytes()
    for extra in state.glob("history.sqlite-*"):
        extra.unlink()
    path.write_bytes(data[:1024])


def absurd_lock(state: Path, work: Path) -> None:
    (state / "lock-deploytest.json").write_text(json.dumps({"who": "mallory", "since": 1e300, "reason": "x"}))


def read_only(state: Path, work: Path) -> Callable[[], None]:
    """The state directory read-only: a read-only bind mount as root (whom modes do not stop)."""
    for extra in state.glob("history.sqlite-*"):
        extra.unlink()
    if os.geteuid() != 0:
        state.chmod(0o500)
        return lambda: state.chmod(0o700)
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
    return lambda: subprocess.run(["umount", "--lazy", str(state)], check=True)


STATE_CASES = [
    Case(
        "history-garbage",
        ("history",),
        "history.sqlite: the history is damaged (file is not a database); move it aside",
        setup=garbage_history,
        own_state=True,
    ),
    Case(
        "history-empty",
        ("history",),
        "history.sqlite: the history is damaged (it is empty); move it aside",
        setup=empty_history,
        own_state=True,
    ),
    Case(
        "history-truncated",
        ("deploy", "--dry-run"),
        "history.sqlite: the history is damaged",
        setup=truncated_history,
        own_state=True,
    ),
    Case("lock-since-absurd", ("deploy",), "stale lock held by unknown since", setup=absurd_lock, own_state=True),
    Case("state-read-only", ("history",), "history.sqlite: cannot open the history", setup=read_only, own_state=True),
]

CASES = INVENTORY_CASES + FLAG_CASES + STATE_CASES


def test_there_are_enough_cases():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_and_changes_no_host(fleet, case, capsys, monkeypatch, tmp_path):
    base = fleet.inventory("bad")
    doc = yaml.safe_load(base.path.read_text())
    if case.own_state:
        state = tmp_path / "state"
        subprocess.run(["cp", "-a", str(fleet.state_dir), str(state)], check=True)
        doc["state_dir"] = str(state)
    path = tmp_path / "inventory.yaml"
    if case.raw is not None:
        path.write_bytes(case.raw)
    else:
        if case.change:
            case.change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    undo = case.setup(Path(doc["state_dir"]), tmp_path) if case.setup else None
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    argv = (
        [*case.argv]
        if "-i" in case.argv or case.argv[0].startswith(("lab.", "demo."))
        else [*case.argv, "-i", str(path)]
    )
    before = current_links(fleet)
    try:
        code, out, err = run_invoke(argv, capsys)
    finally:
        if undo is not None:
            undo()
    lines = err.strip("\n").split("\n")
    assert code == 1, f"exit {code}: {out} {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    assert not any(ch < " " or ch == "\x7f" for ch in lines[0]), repr(lines[0])
    expected = case.expected.replace("{inv}", str(path))
    assert expected in lines[0], lines[0]
    if case in INVENTORY_CASES:
        assert lines[0].startswith(f"error: {path}:"), lines[0]  # the file and the line
    assert current_links(fleet) == before


def test_a_key_file_that_is_public_or_readable_by_others_is_named(fleet, capsys, tmp_path):
    """The two key cases of the table, with their whole message."""
    for change, message in [
        (public_key, "is a public key: expected the private key file (without .pub)"),
        (loose_key, "has mode 0644: a private key file must be private (chmod 600 "),
    ]:
        doc = yaml.safe_load(fleet.inventory("key").path.read_text())
        change(doc)
        path = tmp_path / "key.yaml"
        path.write_text(yaml.safe_dump(doc))
        code, _, err = run_invoke(["status", "-i", str(path)], capsys)
        assert code == 1 and message in err, err


def test_the_real_command_line_says_the_same_in_one_line(fleet, tmp_path):
    """Three cases as real processes: the exit code and stderr a shell sees."""
    inv = fleet.inventory("cli")
    for argv, expected in [
        (["history", "--limit", "abc", "-i", str(inv.path)], "error: --limit: expected a whole number"),
        (["deploy", "--only", "", "-i", str(inv.path)], "error: --only: expected 'failed'"),
        (["lab.up", "--hosts", "abc"], "error: --hosts: expected a whole number"),
    ]:
        p = subprocess.run(
            [str(ROOT / ".venv/bin/invoke"), *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 1 and p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith(expected), (
            p.stderr
        )


def test_a_reader_that_goes_away_ends_the_task_quietly(fleet):
    """`invoke lab.status | head -1`: no BrokenPipeError, nothing on stderr."""
    p = subprocess.run(
        f"{ROOT / '.venv/bin/invoke'} lab.status --name {fleet.lab.name} | head -c 10",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        executable="/bin/bash",
    )
    assert p.stderr == "" and len(p.stdout) == 10, p.stderr


def test_the_event_log_with_a_bad_field_and_the_lock_with_an_absurd_time_are_shown_not_fatal(fleet, tmp_path, capsys):
    state = tmp_path / "state"
    subprocess.run(["cp", "-a", str(fleet.state_dir), str(state)], check=True)
    inv = fleet.inventory("shown", state_dir=str(state))
    log = sorted((state / "deploys").glob("*.jsonl"))[-1]
    with open(log, "a") as f:
        f.write(
            json.dumps(
                {"event": "phase-done", "deploy_id": log.stem, "phase": "x", "ok": "many", "failed": 0, "seconds": 1}
            )
            + "\n"
        )
    absurd_lock(state, tmp_path)
    code, out, err = run_invoke(["status", "-i", str(inv.path)], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert f"{log}:" in out and "skipped a line: not a deploy event (TypeError: field ok: expected int" in out
    assert "stale lock held by unknown since " in out and "unreadable lock file" in out  # 1e300 is no time
    assert sys.getrecursionlimit()  # the process is still whole
