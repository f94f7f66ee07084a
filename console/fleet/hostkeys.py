"""The host keys a connection accepts: the inventory's known_hosts file and nothing else.

Paramiko's own loader (`HostKeys.load`) fails on the whole file at the first line that
starts with an OpenSSH marker (`@cert-authority`, `@revoked`), and Fabric's default policy
accepts any key without reading a file at all. So the file is read here, line by line:

- a plain line trusts its key for its host names (hashed names `|1|...` included);
  a line Paramiko cannot read (an unknown key type, bad base64) is skipped, as OpenSSH
  skips it, so that host is refused as unknown rather than trusted;
- `@revoked` keys are refused for every host, even if a plain line also lists them;
- `@cert-authority` refuses the file with one line: Paramiko checks host keys, not host
  certificates, so hosts that rely on a CA would silently become "unknown".

`refuse_unknown` is the policy for a key not in the file: RejectPolicy's refusal, saying
whether the key is unknown or revoked. The file is parsed once per change (its size and
modification time), not once per host.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko

from console.fleet.connection import HostError


class Refused(paramiko.SSHException):
    """The host's key is not one the known_hosts file trusts."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why  # "unknown host" or "revoked host key"


@dataclass(frozen=True)
class KnownHosts:
    """One known_hosts file, parsed: the trusted keys and the revoked ones."""

    path: Path
    trusted: paramiko.HostKeys
    revoked: frozenset[bytes]  # key blobs

    def install(self, client: paramiko.SSHClient, name: str) -> None:
        """Give `client` this file's keys for the host Paramiko looks up as `name`
        (`address`, or `[address]:port` off port 22), and a policy that refuses the rest."""
        keys = client.get_host_keys()
        for key_type, key in (self.trusted.lookup(name) or {}).items():
            if key.asbytes() not in self.revoked:
                keys.add(name, key_type, key)
        client.set_missing_host_key_policy(_RejectPolicy(self.revoked))


class _RejectPolicy(paramiko.RejectPolicy):
    """RejectPolicy, telling an unknown key from a revoked one."""

    def __init__(self, revoked: frozenset[bytes]) -> None:
        self.revoked = revoked

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise Refused("revoked host key" if key.asbytes() in self.revoked else "unknown host")


def known_hosts(path: Path) -> KnownHosts:
    """The parsed file (cached until it changes); a refused file raises HostError."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise HostError(f"{path}: cannot read the known_hosts file: {exc.strerror}") from None
    return _parse(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> KnownHosts:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HostError(f"{path}: cannot read the known_hosts file: {exc.strerror}") from None
    trusted = paramiko.HostKeys()
    revoked: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@cert-authority"):
            raise HostError(
                f"{path}:{number}: @cert-authority is not supported: Paramiko verifies host keys, not host "
                "certificates; list each host's own key in this file"
            )
        if line.startswith("@revoked"):
            key = _key(line.split()[2:4])
            if key is not None:
                revoked.add(key.asbytes())
            continue
        if line.startswith("@"):
            continue  # a marker OpenSSH does not know either: the line trusts nothing
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
            entry = None
        if entry is not None:
            for name in entry.hostnames:
                trusted.add(name, entry.key.get_name(), entry.key)
    return KnownHosts(path, trusted, frozenset(revoked))


def _key(fields: list[str]) -> paramiko.PKey | None:
    """The key of a `type base64` pair, or None if Paramiko cannot read it."""
    if len(fields) != 2:
        return None
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
    except (binascii.Error, paramiko.pkey.UnknownKeyType, paramiko.SSHException, ValueError):
        return None


def lookup_name(address: str, port: int) -> str:
    """How known_hosts names a host: `address` on port 22, `[address]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"
