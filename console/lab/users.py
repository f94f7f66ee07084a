"""The deploy user: who deploys log in as on every host.

Root mode: `labdeploy`, an unprivileged system user with shell /bin/sh and an empty home
(no shell start-up files: pyenv's rc alone costs ~80 ms per remote command). Its password
field is `*` (no password, but not locked: sshd without PAM refuses locked accounts).
Without root: the current user.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from console.core.errors import ConsoleError
from console.lab import layout, procs


@dataclass(frozen=True)
class DeployUser:
    name: str
    uid: int
    gid: int


def current() -> DeployUser:
    pw = pwd.getpwuid(os.getuid())
    return DeployUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def ensure_lab_user() -> DeployUser:
    """Create (or repair) `labdeploy`; root only."""
    name, home = layout.DEPLOY_USER, layout.DEPLOY_HOME
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        procs.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--home-dir",
                str(home),
                "--no-create-home",
                name,
            ]
        )
        pw = pwd.getpwnam(name)
    if pw.pw_shell != "/bin/sh" or pw.pw_dir != str(home):
        procs.run(["usermod", "--shell", "/bin/sh", "--home", str(home), name])
    if _locked(name):
        procs.run(["usermod", "--password", "*", name])
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    return DeployUser(name, pw.pw_uid, pw.pw_gid)


def _locked(name: str) -> bool:
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == name:
                    return fields[1].startswith("!")
    except OSError as e:
        raise ConsoleError(f"cannot read /etc/shadow: {e.strerror}") from None
    return False
