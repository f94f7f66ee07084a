"""Key pairs and known_hosts lines: ed25519, generated in-process (no ssh-keygen per host)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    """OpenSSH private key file contents."""
    public: str
    """`ssh-ed25519 AAAA...` (no comment)."""


def new_keypair() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private, public)


def write_keypair(pair: KeyPair, path: Path, comment: str, uid: int = -1, gid: int = -1) -> None:
    """Write `path` (mode 0600) and `path.pub`, owned by uid:gid when given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        if uid >= 0:
            os.fchown(f.fileno(), uid, gid)
        f.write(pair.private)
    pub = path.with_name(path.name + ".pub")
    pub.write_text(f"{pair.public} {comment}\n")
    if uid >= 0:
        os.chown(pub, uid, gid)


def known_hosts_entry(address: str, port: int, public: str) -> str:
    """The line ssh and paramiko look up: `addr` for port 22, `[addr]:port` otherwise."""
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {public}"
