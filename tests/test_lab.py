"""The fleet lab, on the real lab: ssh with the generated inventory, isolation, host keys, faults, down."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest
import yaml

from console.core.errors import ConsoleError
from console.lab import LAB_ROOT, Lab, layout
from console.lab import state as labstate

pytestmark = pytest.mark.lab
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (namespaces, tc)")


def inventory_of(lab: Lab) -> dict:
    return yaml.safe_load(Path(lab.inventory_path).read_text())


def host_entry(inv: dict, name: str) -> dict:
    return next(h for h in inv["hosts"] if h["name"] == name)


def connect(inv: dict, name: str, timeout: float = 5) -> paramiko.SSHClient:
    """Connect as the inventory says, verifying the host key against its known_hosts (unknown or changed: refused)."""
    h = host_entry(inv, name)
    client = paramiko.SSHClient()
    client.load_host_keys(inv["ssh"]["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        h["address"],
        port=h["port"],
        username=inv["ssh"]["user"],
        key_filename=inv["ssh"]["key"],
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 10) -> tuple[int, str, str]:
    _, out, err = client.exec_command(command, timeout=timeout)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


def ssh_run(inv: dict, name: str, command: str) -> tuple[int, str, str]:
    client = connect(inv, name)
    try:
        return run(client, command)
    finally:
        client.close()


def deploy_path(inv: dict, name: str) -> str:
    return host_entry(inv, name).get("deploy_path", inv["deploy_path"])


# -- the inventory and ssh ------------------------------------------------------------------


def test_inventory_has_the_team_format(lab):
    inv = inventory_of(lab)
    assert list(inv)[:7] == ["environment", "repo", "branch", "deploy_path", "state_dir", "ssh", "hosts"]
    assert inv["environment"] == lab.name
    assert inv["state_dir"] == f"{LAB_ROOT}/{lab.name}/state"
    assert inv["ssh"]["key"] == f"{LAB_ROOT}/{lab.name}/deploy_ed25519"
    assert [h["name"] for h in inv["hosts"]] == ["web001", "web002", "web003", "web004"]
    for h in inv["hosts"]:
        assert set(h) <= {"name", "address", "port", "deploy_path", "vars"}
        assert "http_port" in h["vars"]
        if ROOT:
            assert h["address"].startswith(("198.18.", "198.19.")) and h["port"] == 22
            assert "deploy_path" not in h
        else:
            assert h["address"] == "127.0.0.1"
    if not ROOT:
        assert len({h["vars"]["http_port"] for h in inv["hosts"]}) == len(inv["hosts"])


def test_every_host_answers_over_ssh_with_the_inventory(lab):
    inv = inventory_of(lab)
    for h in inv["hosts"]:
        rc, out, _ = ssh_run(
            inv, h["name"], "hostname; id -un; ls -A ~; test -w " + deploy_path(inv, h["name"]) + " && echo writable"
        )
        lines = out.split()
        assert rc == 0
        if ROOT:
            assert lines[0] == h["name"]
            assert lines[1] == "labdeploy"
            assert lines[2:] == [".ssh", "writable"]  # an empty home: no shell start-up files
        assert lines[-1] == "writable"


def test_a_file_on_one_host_is_not_on_another(lab):
    inv = inventory_of(lab)
    rc, _, err = ssh_run(inv, "web001", f"echo only-here > {deploy_path(inv, 'web001')}/isolation-probe")
    assert rc == 0, err
    assert lab.exec("web001", ["cat", f"{deploy_path(inv, 'web001')}/isolation-probe"]).stdout == "only-here\n"
    for other in ("web002", "web003"):
        assert lab.exec(other, ["test", "-e", f"{deploy_path(inv, other)}/isolation-probe"]).returncode == 1
        rc, _, _ = ssh_run(inv, other, f"test -e {deploy_path(inv, other)}/isolation-probe")
        assert rc == 1


@needs_root
def test_hosts_reach_each_other_as_the_deploy_user(lab):
    inv = inventory_of(lab)
    target = host_entry(inv, "web003")["address"]
    rc, out, err = ssh_run(inv, "web001", f"ssh -o BatchMode=yes -o ConnectTimeout=5 {target} hostname")
    assert (rc, out.strip()) == (0, "web003"), err


def test_a_changed_host_key_is_refused(lab):
    inv = inventory_of(lab)
    lab.rekey("web003")
    try:
        assert lab.status()[2].rekeyed
        with pytest.raises(paramiko.BadHostKeyException):
            connect(inv, "web003")
    finally:
        lab.heal("web003")
    assert ssh_run(inv, "web003", "true")[0] == 0


# -- faults -----------------------------------------------------------------------------------


def test_kill_and_heal(lab):
    inv = inventory_of(lab)
    h = host_entry(inv, "web004")
    session = connect(inv, "web004")
    try:
        lab.kill("web004")
        assert not lab.status()[3].alive
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((h["address"], h["port"]), timeout=2).close()
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            run(session, "true", timeout=3)  # its sessions died with it
    finally:
        session.close()
        lab.heal("web004")
    assert lab.status()[3].alive
    assert ssh_run(inv, "web004", "true")[0] == 0


def test_cut_hangs_connections_and_heal_restores_them(lab):
    inv = inventory_of(lab)
    h = host_entry(inv, "web002")
    lab.cut("web002")
    try:
        assert lab.status()[1].cut
        started = time.monotonic()
        if ROOT:  # the link is down: the connect itself times out, it is not refused
            with pytest.raises(TimeoutError):
                socket.create_connection((h["address"], h["port"]), timeout=2).close()
        else:  # SIGSTOP: the kernel accepts, nobody answers
            with pytest.raises((paramiko.SSHException, TimeoutError, socket.timeout)):
                connect(inv, "web002", timeout=2)
        assert time.monotonic() - started >= 1.9
    finally:
        lab.heal("web002")
    assert not lab.status()[1].cut
    assert ssh_run(inv, "web002", "true")[0] == 0


def test_fill_makes_the_deploy_path_nearly_full_and_heal_copies_it_back(lab):
    inv = inventory_of(lab)
    path = deploy_path(inv, "web001")
    assert (
        ssh_run(
            inv,
            "web001",
            f"mkdir -p {path}/releases/r1 && echo v1 > {path}/releases/r1/index.html "
            f"&& ln -sfn releases/r1 {path}/current",
        )[0]
        == 0
    )
    lab.fill("web001")
    try:
        assert lab.status()[0].filled
        rc, out, _ = ssh_run(inv, "web001", f"cat {path}/current/index.html")
        assert (rc, out) == (0, "v1\n")  # the current release still serves
        rc, _, err = ssh_run(inv, "web001", f"head -c 300000 /dev/zero > {path}/big")
        assert rc != 0
        assert ("No space left" if ROOT else "Permission denied") in err
        if ROOT:
            assert ssh_run(inv, "web001", f"rm -f {path}/big; echo small > {path}/during-fill")[0] == 0
    finally:
        lab.heal("web001")
    assert not lab.status()[0].filled
    rc, out, _ = ssh_run(inv, "web001", f"cat {path}/current/index.html; ls -A {path}")
    assert rc == 0 and out.startswith("v1\n")
    if ROOT:
        assert "during-fill" in out and ".lab-fill" not in out  # what was written during the fill is kept
        assert ssh_run(inv, "web001", f"head -c 300000 /dev/zero > {path}/big && rm {path}/big")[0] == 0


@needs_root
def test_slow_shapes_the_link_and_heal_removes_it(lab):
    inv = inventory_of(lab)

    def pull_seconds() -> float:
        client = connect(inv, "web003")
        try:
            started = time.monotonic()
            rc, out, _ = run(client, "head -c 200000 /dev/zero | base64 -w0 | head -c 200000", timeout=30)
            assert rc == 0 and len(out) == 200000
            return time.monotonic() - started
        finally:
            client.close()

    lab.slow("web003", "1mbit")
    try:
        assert lab.status()[2].slow == "1mbit"
        assert pull_seconds() > 1.0  # 200 kB at 1 Mbit/s is ~1.6 s
    finally:
        lab.heal("web003")
    assert pull_seconds() < 1.0


def test_user_errors_are_one_line_console_errors(lab):
    with pytest.raises(ConsoleError, match="no host 'web999'"):
        lab.kill("web999")
    with pytest.raises(ConsoleError, match="is not up"):
        Lab("no-such-lab-here").status()
    with pytest.raises(ConsoleError, match="not valid"):
        Lab("Bad Name")
    if ROOT:
        with pytest.raises(ConsoleError, match="rate"):
            lab.slow("web001", "fast")


# -- down -------------------------------------------------------------------------------------


def leftovers(name: str) -> list[str]:
    """Everything of the lab still on this machine: namespaces, links, live processes, mounts, files."""
    found = []
    if os.path.isdir("/run/netns"):
        found += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(f"dcl-{name}.")]
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout)
    found += [f"link {x['ifname']}" for x in links if x.get("ifalias") == f"deploy-console-lab:{name}"]
    lab_dir = f"{LAB_ROOT}/{name}"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            mounts = Path(f"/proc/{pid}/mountinfo").read_text() if ROOT else ""
        except OSError:
            continue
        if state == "Z":
            continue
        if lab_dir + "/" in cmd:
            found.append(f"process {pid}: {cmd[:60]}")
        if lab_dir + "/" in mounts:
            found.append(f"mount in process {pid}")
    if os.path.exists(lab_dir):
        found.append(f"dir {lab_dir}")
    return found


@needs_root
def test_rate_shapes_the_deploy_machines_link_both_ways_on_the_bridges_side(lab_session_tag, tmp_path):
    """What the deploy machine sends queues at the bridge (an ifb), not in its own kernel,
    whose local drops aborted connections (README, "Measured", at 1 Mbit/s)."""
    name = f"{lab_session_tag}-rate"
    lab = Lab(name)
    inv = yaml.safe_load(lab.up(2, rate="1mbit", inventory_path=tmp_path / "rate.yaml").read_text())
    try:
        slot = labstate.require(name).slot
        own, bridge, ifb = layout.deploy_link(slot), layout.deploy_peer_link(slot), layout.deploy_ifb(slot)

        def qdiscs(dev: str) -> list[str]:
            out = subprocess.run(["tc", "-j", "qdisc", "show", "dev", dev], capture_output=True, check=True).stdout
            return sorted(q["kind"] for q in json.loads(out))

        assert (qdiscs(own), qdiscs(bridge), qdiscs(ifb)) == (["noqueue"], ["ingress", "tbf"], ["tbf"])
        through_ifb = Path(f"/sys/class/net/{ifb}/statistics/tx_bytes")
        before = int(through_ifb.read_text())
        client = connect(inv, "web001")
        try:
            stdin, out, _ = client.exec_command("wc -c", timeout=30)
            stdin.write(b"x" * 200000)
            stdin.channel.shutdown_write()
            assert out.read() == b"200000\n"
        finally:
            client.close()
        assert int(through_ifb.read_text()) - before > 200000  # it went through the ifb's shaper
    finally:
        lab.down()
    assert leftovers(name) == []


def test_down_leaves_nothing_behind_also_after_a_crashed_up(lab_session_tag, tmp_path):
    name = f"{lab_session_tag}-down"
    inv_path = tmp_path / "down.yaml"
    # A crashed run: the python process that is bringing the lab up is killed half-way.
    code = f"from console.lab import Lab; Lab({name!r}).up(40, inventory_path={str(inv_path)!r})"
    crashed = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while not list(Path(LAB_ROOT, name).glob("hosts/*/sshd.pid")) and time.monotonic() < deadline:
        time.sleep(0.005)
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()
    # A later up cleans the leftovers; a lab made by a process that is gone can be faulted and taken down.
    subprocess.run([sys.executable, "-c", code.replace("up(40", "up(3")], check=True)
    lab = Lab(name)
    assert [s.alive for s in lab.status()] == [True, True, True]
    inv = yaml.safe_load(inv_path.read_text())
    session = connect(inv, "web001")
    lab.fill("web001")
    lab.cut("web002")
    if ROOT:
        lab.slow("web003", "10mbit")
    lab.down()
    session.close()
    assert leftovers(name) == []
    assert not inv_path.exists()
    lab.down()  # idempotent
    with pytest.raises(ConsoleError, match="is not up"):
        lab.status()


# -- without root -----------------------------------------------------------------------------

NONROOT_SCRIPT = r"""
import json, sys
from console.lab import Lab
lab = Lab(sys.argv[1])
if sys.argv[2] == "up":
    print(lab.up(2, inventory_path=sys.argv[3]))
elif sys.argv[2] == "status":
    print(json.dumps([[s.name, s.alive, s.cut, s.filled] for s in lab.status()]))
else:
    getattr(lab, sys.argv[2])(*sys.argv[3:])
"""


@needs_root
def test_a_lab_without_root_runs_on_loopback(lab, lab_session_tag, tmp_path):
    """Runs the lab as the unprivileged deploy user (made by the root-mode `lab` fixture) with the system python."""
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import yaml, cryptography"], capture_output=True)
    if probe.returncode != 0 or not shutil.which("runuser"):
        pytest.skip("needs runuser and /usr/bin/python3 with yaml and cryptography")
    name = f"{lab_session_tag}-user"
    inv_dir = Path(LAB_ROOT) / f".{name}-inventory"
    inv_dir.mkdir(exist_ok=True)
    shutil.chown(inv_dir, "labdeploy")
    inv_path = inv_dir / "inv.yaml"
    repo = str(Path(__file__).resolve().parents[1])

    def as_user(*args: str) -> str:
        proc = subprocess.run(
            ["runuser", "-u", "labdeploy", "--", python, "-c", NONROOT_SCRIPT, name, *args],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": repo, "PATH": os.environ["PATH"], "HOME": "/var/lib/labdeploy"},
            cwd="/",
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        as_user("up", str(inv_path))
        inv = yaml.safe_load(inv_path.read_text())
        assert [h["address"] for h in inv["hosts"]] == ["127.0.0.1"] * 2
        assert inv["hosts"][0]["port"] != inv["hosts"][1]["port"]
        assert inv["hosts"][0]["deploy_path"] != inv["hosts"][1]["deploy_path"]
        assert ssh_run(inv, "web001", f"echo hi > {deploy_path(inv, 'web001')}/x")[0] == 0
        assert ssh_run(inv, "web002", f"test -e {deploy_path(inv, 'web002')}/x")[0] == 1
        as_user("kill", "web002")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", host_entry(inv, "web002")["port"]), timeout=2).close()
        as_user("cut", "web001")
        with pytest.raises((paramiko.SSHException, TimeoutError, socket.timeout)):
            connect(inv, "web001", timeout=1)
        assert json.loads(as_user("status")) == [["web001", True, True, False], ["web002", False, False, False]]
        as_user("heal", "all")
        assert ssh_run(inv, "web001", "true")[0] == 0 and ssh_run(inv, "web002", "true")[0] == 0
    finally:
        as_user("down")
        shutil.rmtree(inv_dir, ignore_errors=True)
    assert leftovers(name) == []
