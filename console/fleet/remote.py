"""Every shell command the deploy sends to a host, built in one place.

Each builder returns the exact command string; every value in it goes through
`shlex.quote`, so host names, refs, paths and commit data can never inject shell. The
same builders feed the steps and `--dry-run`, so the plan shows what will really run.
The inventory's templates (restart, health) become a `Command`: its text names secrets
only as shell variables, and their values go on its stdin (console/config/templates.py).

Host layout (Capistrano's, with content-hashed assets beside it):

    {deploy_path}/assets/...            hashed asset files shared by all releases
    {deploy_path}/releases/<release>/   one tree per release, with REVISION and manifest.json
    {deploy_path}/current -> releases/<release>
    {deploy_path}/revisions.log         one line per switch: time, release, user
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from console.config import templates
from console.config.inventory import Host
from console.core.errors import ConsoleError
from console.core.text import check_line, short


def q(value: object) -> str:
    """Shell-quote one value for a remote command."""
    return shlex.quote(str(value))


@dataclass(frozen=True)
class Command:
    """An inventory command for one host: the text sent (no secret in it) and its stdin
    (the values of the secrets it reads, one per line; None: no input)."""

    text: str
    stdin: str | None = None


def command(template: str, host: Host, secrets: Mapping[str, str]) -> Command:
    """An inventory command template (restart, health) for `host`: values shell-quoted,
    secrets read from stdin."""
    text, used = templates.shell_command(template, host.fields(), secrets)
    return Command(text, "".join(secrets[name] + "\n" for name in used) if used else None)


def shown(template: str, host: Host, secrets: Collection[str]) -> str:
    """The command as --dry-run prints it (secrets as `***`)."""
    return templates.shown_command(template, host.fields(), secrets)


def url(template: str, host: Host) -> str:
    """An inventory URL template for `host` (values as they are; no secrets in URLs)."""
    return templates.fill(template, {k: str(v) for k, v in host.fields().items()})


def assets_dir(deploy_path: str) -> str:
    """Where every release's hashed assets live on a host."""
    return f"{deploy_path}/assets"


def release_dir(deploy_path: str, release: str) -> str:
    """Where one release's code lives on a host."""
    return f"{deploy_path}/releases/{release}"


RELEASE_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{7,40}(-\d+)?\Z")


#: The UTC time that starts every release and deploy id, so ids sort by time.
STAMP = "%Y%m%dT%H%M%SZ"


def stamp(when: float | None = None) -> str:
    """`20261122T101500Z`: `when` (default now) as ids begin."""
    return time.strftime(STAMP, time.gmtime(when))


def release_id(revision: str, when: float | None = None) -> str:
    """`20261122T101500Z-ab12cd3`: sorts by time and names its revision."""
    return f"{stamp(when)}-{short(revision)}"


def release_revision(release: str) -> str:
    """The commit id a release id names (its 7 hex digits)."""
    return check_release_id(release).split("-")[1]


def check_release_id(release: str) -> str:
    if not RELEASE_ID.match(release):
        raise ConsoleError(f"release {release!r} is not a release id: expected e.g. 20261122T101500Z-ab12cd3")
    return release


def has_release(deploy_path: str, release: str) -> str:
    """Prints `present` when the release is staged on the host, `missing` when it is not."""
    return f"if test -f {q(release_dir(deploy_path, check_release_id(release)))}/REVISION; then echo present; else echo missing; fi"


def remove_release(deploy_path: str, release: str) -> str:
    return f"rm -rf -- {q(release_dir(deploy_path, release))}"


def activate(deploy_path: str, release: str, user: str) -> str:
    """Switch `current` atomically: a new symlink renamed over the old one, so at every
    instant the host serves the old or the new release completely. Prints the revision.
    The revisions.log line is `time release user`: release and user are one line each."""
    check_release_id(release)
    check_line(user, "user")
    d, r = q(deploy_path), q(f"releases/{release}")
    tmp = q(f".current-{release}")
    log = q(f"{release} {user}")
    return (
        f"cd {d} && test -f {r}/REVISION && ln -sfn {r} {tmp} && mv -Tf {tmp} current"
        f' && echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) "{log} >> revisions.log && cat {r}/REVISION'
    )


#: What `stage` checks of each file it links from the live release (`stat -c`): size,
#: mtime and mode, rsync's test for a hard link (`console.pipeline.delta` has the build's).
LINKED_STAT = "%s %Y %a"
#: The first line `stage` prints when it staged the release; otherwise it printed
#: `FALLBACK` and why, changed nothing, and the release goes by rsync.
STAGED, FALLBACK = "staged", "fallback:"
#: `stage`'s exit status when the assets failed (the host got no code), and when the code
#: failed (its partial release removed).
ASSETS_FAILED, CODE_FAILED = 4, 5


def stage(
    deploy_path: str,
    *,
    base: str,
    base_revision: str,
    release: str,
    assets_bytes: int,
    needed: Sequence[str],
    linked: Sequence[str],
    linked_stat: str,
) -> str:
    """Stage `release` on a host at `base` from the payload on stdin (console/pipeline/
    delta.py says what is in it), in one session and as few programs as it can (sh, stat,
    tar with its gzip, rm and the survey's awk and find). First prove the host is at
    `base` as built: `current` and REVISION name it, every asset in `needed` is there, and
    the files of `base` to link (`linked`) have the build's `linked_stat`. Then the
    assets' tar (the first `assets_bytes`, gzipped as the code's), each new asset whole
    before its name, and their staging directory goes; then the code's, hard links to
    `base`'s files and the changed ones, REVISION last. Then cleanup's survey. Prints
    STAGED, or FALLBACK and why, having changed nothing; a failed tar removes what it
    staged and exits ASSETS_FAILED or CODE_FAILED."""
    d, live, new = q(deploy_path), q(f"releases/{base}"), q(f"releases/{release}")
    incoming = q(f"assets/.incoming-{release}")

    def otherwise(why: str) -> str:
        return f"|| {{ echo {q(FALLBACK)} {q(why)}; exit 0; }}"

    lines = [
        f"cd {d} {otherwise('no deploy path')}",
        f"[ -L current ] && [ current -ef {live} ] {otherwise(f'current is not {base}')}",
        f'read -r rev < {live}/REVISION && [ "$rev" = {q(base_revision)} ] {otherwise(f"the REVISION of {base} differs")}',
        f"[ ! -e {new} ] {otherwise(f'{release} is there already')}",
    ]
    if needed:
        names = " ".join(q(a) for a in needed)
        lines.append(f'for a in {names}; do [ -e "assets/$a" ] {otherwise(f"an asset of {release} is missing")}; done')
    if linked:
        files = " ".join(q(f) for f in linked)
        lines.append(
            f'[ "$(cd {live} && stat -c {q(LINKED_STAT)} -- {files})" = {q(linked_stat)} ]'
            f" {otherwise(f'files of {base} differ from its build')}"
        )
    if assets_bytes:
        lines += [
            f"head -c {assets_bytes} | tar -x -z -p --skip-old-files -f - || {{ rm -rf {incoming}; exit {ASSETS_FAILED}; }}",
            f"rm -rf {incoming} || exit {ASSETS_FAILED}",
        ]
    lines.append(f"tar -x -z -p -f - || {{ rm -rf {new}; exit {CODE_FAILED}; }}")
    lines += [f"echo {STAGED}", survey(deploy_path, base)]
    return "\n".join(lines)


def parse_staged(answer: str) -> Survey | None:
    """`stage`'s answer: the survey when it staged, None when it did not (FALLBACK)."""
    first, _, rest = answer.partition("\n")
    return parse_survey(rest) if first == STAGED else None


def survey(deploy_path: str, current: str | None = None) -> str:
    """What cleanup needs to know, in one round trip and three programs (readlink, awk,
    find; the rest are shell builtins): the current release (`current`, if the caller
    knows it: no readlink), every release, every release's manifest, every asset file.
    `parse_survey` reads the answer."""
    d = q(deploy_path)
    live = f"echo {q(f'releases/{current}')}" if current else "{ readlink current || true; }"
    return (
        f"cd {d} && {live} && echo @@"
        ' && for r in releases/*; do if [ -d "$r" ]; then echo "${r#releases/}"; fi; done'
        " && echo @@ && { awk 'FNR == 1 { print \"@@ \" FILENAME } { print }' releases/*/manifest.json 2>/dev/null || true; }"
        " && echo @@ && { cd assets 2>/dev/null && find . -type f || true; }"
    )


@dataclass(frozen=True)
class Survey:
    current: str  # the release `current` points to, "" if none
    manifests: dict[str, str | None]  # release -> its manifest's text (None: no manifest)
    assets: list[str]  # asset files, relative to {deploy_path}/assets


def parse_survey(answer: str) -> Survey:
    current, names, manifest_text, assets = ([*answer.split("@@\n"), "", "", ""])[:4]
    manifests: dict[str, str | None] = {name: None for name in names.split()}
    for block in manifest_text.split("@@ releases/")[1:]:
        path, _, body = block.partition("\n")
        manifests[path.removesuffix("/manifest.json")] = body
    return Survey(
        current=current.strip().removeprefix("releases/"),
        manifests=manifests,
        assets=[p.removeprefix("./") for p in assets.split("\n") if p.strip()],
    )


def remove(deploy_path: str, paths: list[str]) -> str:
    """Remove files or trees under the deploy path (relative paths), then empty asset dirs."""
    d = q(deploy_path)
    return f"cd {d} && rm -rf -- {' '.join(q(p) for p in paths)} && (find assets -mindepth 1 -type d -empty -delete || true)"


def read_revision(deploy_path: str) -> str:
    return f"cat {q(deploy_path)}/current/REVISION"


# -- the tree strategy (console/fleet/tree.py, console/pipeline/distribute.py) ----------------

#: mbuffer's block: what a relay holds before it passes a piece on (latency per level of a
#: tree, against wake-ups per byte). 4 MB through a receiving and a sending mbuffer over
#: loopback cost 50-80 ms of CPU in 8 KiB blocks, 17-23 ms in 32 KiB ones; a level then
#: holds 32 KiB: 13 ms at 20 Mbit/s, 0.3 ms at 1 Gbit/s.
TREE_BLOCK = 32 << 10
#: The exit statuses of `tree_receive` before anything was received (the host then gets
#: the release by rsync alone): its incoming directory, a receiver that does not listen,
#: no "go" from the push host.
TREE_SETUP, TREE_LISTEN, TREE_NO_GO = 3, 4, 5
#: Where the tree leaves what a host received, checked or not, until its part ends.
TREE_INCOMING = ".incoming"
#: The characters of a link's token (hex): what a stream from host to host begins with.
TREE_TOKEN = 64
#: What `sha256sum` says of an empty stream: nothing came (no refusal to report).
_NOTHING = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class TreeRole:
    """A host's part in one stripe: how many bytes, from whom (None: stdin, the push host),
    to whom; the port is the stripe's."""

    stripe: int
    size: int
    port: int
    parent: str | None
    children: tuple[str, ...]


def tree_keys(roles: Sequence[TreeRole], address: str, tokens: Mapping[tuple[int, str], str]) -> bytes:
    """What `tree_receive` reads first on stdin, for the host at `address`: per stripe in
    `roles`' order, the SHA-256 of the token its parent's stream must begin with (a parent
    is fed), then the token each child's stream begins with. `tokens` holds the deploy's
    tokens, one per link: (stripe, the receiving host's address) -> token."""
    lines = []
    for role in roles:
        if role.parent is not None:
            lines.append(hashlib.sha256(tokens[role.stripe, address].encode()).hexdigest())
        lines += [tokens[role.stripe, child] for child in role.children]
    return "".join(f"{line}\n" for line in lines).encode()


def tree_receive(deploy_path: str, roles: list[TreeRole], *, sums: int, stall: float, patience: float) -> str:
    """One host's whole part in the tree, as one script (`Connection.stream`):

    1. reads its links' keys from stdin (`tree_keys`: the digest of each token it is to
       receive, the token of each child's stream; shell variables, never a file or an
       argument), then `sums` bytes of checksums; starts an mbuffer per stripe that a
       parent sends it, listening on the stripe's port for that parent's address only; says
       "listening" once each listens;
    2. waits for "go" on stdin (every host listens by then), then starts one mbuffer per
       child, each buffering what it relays (a stalled child never holds up its siblings);
       a stripe the push host sends comes on stdin after the "go";
    3. keeps a stripe from a parent only if it begins with its link's token: the first
       `TREE_TOKEN` bytes go straight into `sha256sum`, whose answer must be the key's
       (digests compared, so the comparison tells nothing of the token), and only then is
       the rest passed to the children and to its unpacking, and counted (a stripe is an
       archive of its own, unpacked by a `tar` as it comes: the unpacking ends with the
       stream, not after it) (`_keep`), each child's stream begun with its own link's
       token; a stream without it is refused (its listener ends at its next write), neither
       kept nor relayed (the children's streams end empty). A stripe from the push host,
       over SSH, has no token;
    4. once every stripe has ended and is unpacked (a file cut short fails its check), says
       how much of each came, checks every file against the sums, and hard-links into the
       assets directory only the files the sums name and that match them (never over an
       asset the host has: a name appears whole or not at all). Then nothing of the tree
       is left.

    An mbuffer gives up after `stall` seconds without a byte moving on the network (a dead
    parent, a cut child), or `patience` seconds without any progress at all: no receiver
    outlives its part. Exit 0 once the stripes ended, however much came: what is missing,
    rsync sends."""
    d, i = q(deploy_path), q(f"{deploy_path}/{TREE_INCOMING}")
    opts = f"-q -s {TREE_BLOCK} -W {max(1, math.ceil(patience))} --tcptimeo {max(1, int(stall * 1000))}"
    lines = [
        "set -u",
        "umask 022",
        "exec 3<&0",
        "pids=''",
        f"trap 'kill $pids 2>/dev/null; rm -rf {i}' EXIT",
    ]
    for role in roles:
        j = role.stripe
        if role.parent is not None:
            lines.append(f"read -r want{j} <&3 || exit {TREE_SETUP}")
        lines += [f"read -r key{j}_{c} <&3 || exit {TREE_SETUP}" for c in range(len(role.children))]
    lines += [
        f"rm -rf {i} && mkdir -p {i} && cd {i} || exit {TREE_SETUP}",
        f"dd bs={sums} count=1 iflag=fullblock of=sums status=none <&3 || exit {TREE_SETUP}",
        # every directory the stripes' files go in, before their tars start: a tar that finds
        # no directory for a file makes it, and if another stripe's tar made it in between,
        # GNU tar gives that file up (so the stripe's first file was lost now and then)
        # (a line of sums is "<digest>  <path>", as sha256sum -c reads it below)
        f"sed -n 's|^[^ ]*  \\(.*\\)/[^/]*$|\\1|p' sums | sort -u | xargs -r -d '\\n' mkdir -p -- || exit {TREE_SETUP}",
    ]
    parts = " ".join(f"p{role.stripe}" for role in roles)
    lines.append(" && ".join(f"echo 0 >p{role.stripe}" for role in roles))
    for role in roles:
        j = role.stripe
        lines += [  # each stripe is unpacked as it comes (a pipe, t{j}): nothing waits for its end
            f"mkfifo t{j} {' '.join(f'o{j}.{c}' for c in range(len(role.children)))}",
            f'tar -x -p --no-same-owner -f - <t{j} 2>/dev/null & x{j}=$! pids="$pids $!"',
        ]
        if role.parent is not None:
            refused = q(f"stripe {j + 1}: refused what {role.parent} sent: it does not begin with this deploy's token")
            lines.append(
                f"mbuffer {opts} -m 1M -I {q(role.parent)}:{role.port} -o - 2>e{j} | {{"
                f" got=$(dd bs={TREE_TOKEN} count=1 iflag=fullblock status=none | sha256sum);"
                f' if [ "$got" = "$want{j}  -" ]; then {_keep(role)};'
                f' elif [ "$got" != "{_NOTHING}  -" ]; then echo {refused}; fi; }}'
                f' & r{j}=$! pids="$pids $!"'
            )
    for role in roles:
        if role.parent is None:
            continue
        j, port = role.stripe, f"{role.port:04X}"
        failed = (
            f'{{ echo "stripe {j + 1}: cannot listen on port {role.port}: $(tail -n 1 e{j})"; exit {TREE_LISTEN}; }}'
        )
        lines += [
            "n=0",
            f"while ! grep -qs ':{port} [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6; do",
            f"  kill -0 $r{j} 2>/dev/null || {failed}",
            f"  n=$((n + 1)); [ $n -lt 500 ] || {failed}",
            "  sleep 0.01",
            "done",
        ]
    lines += ["echo listening", f"read -r go <&3 || exit {TREE_NO_GO}"]
    for role in roles:
        j = role.stripe
        for c, child in enumerate(role.children):
            # a child that cannot be reached must not block the stripe's receiver: its pipe,
            # held open from before the relay starts, is drained to the end
            buffer = min(max(1 << 20, role.size + (1 << 16)), 64 << 20)
            lines.append(
                f"{{ mbuffer {opts} -m {buffer} -i - -O {q(child)}:{role.port} <&5 2>e{j}.{c}"
                f" || {{ tail -n 1 e{j}.{c} >f{j}.{c}; cat <&5 >/dev/null; }}; }} 5<o{j}.{c} & "
                f's{j}{c}=$! pids="$pids $!"'
            )
        if role.parent is None:
            lines.append(f'mbuffer {opts} -m 1M -i - -o - <&3 2>e{j} | {{ {_keep(role)}; }} & r{j}=$! pids="$pids $!"')
    for role in roles:
        j = role.stripe
        # a relay or the unpacking still waiting for its pipe (the receiver ended before it
        # wrote) gets its end of file
        unblock = "".join(f"; : <>o{j}.{c}" for c in range(len(role.children)))
        lines.append(f"wait $r{j}{unblock}; : <>t{j}; echo 'stripe {j + 1}: ended'")
        for c, child in enumerate(role.children):
            lines.append(f'wait $s{j}{c}; [ -s f{j}.{c} ] && echo "stripe {j + 1} to {child} stopped: $(cat f{j}.{c})"')
    lines += [f"wait {' '.join(f'$x{role.stripe}' for role in roles)}", "pids=''", f"set -- $(cat {parts})"]
    for n, role in enumerate(roles, 1):
        lines.append(f'echo "stripe {role.stripe + 1}: ${n} of {role.size} bytes"')
    # each stripe is an archive of its own: what came of it whole is used, the rest rsync sends
    lines += [
        f"rm -f {parts} o* t*",
        "sha256sum -c --strict sums 2>/dev/null | sed -n 's/: OK$//p' >good",
        'echo "checked: $(wc -l <good) of $(wc -l <sums) files match the push host\'s checksums"',
        f"xargs -r -d '\\n' cp -l --parents -n -t {d} -- <good",
        "exit 0",
    ]
    return "\n".join(lines)


def _keep(role: TreeRole) -> str:
    """What keeps a stripe's stream (its stdin) once it may be kept: the pipe its `tar`
    unpacks, a pipe per child, into which the child's link's token goes first (what the
    child's stream begins with), and the count of what came (p{j}; the stream itself is not
    kept: the unpacking takes its files). The pipes are opened first on fds 6, 7, ... (sh
    takes one digit: `tree.FANOUT` may be at most 4) and held until the stream ends. tee,
    not mbuffer, writes the pipes: mbuffer's `-o` puts a pipe in packet mode (O_DIRECT), and
    a relay reading the token's 64 bytes and then the stream in its blocks would lose a
    piece of each packet."""
    j = role.stripe
    tokens = "".join(f'exec {6 + c}>o{j}.{c}; printf %s "$key{j}_{c}" >&{6 + c}; ' for c in range(len(role.children)))
    pipes = " ".join([f"o{j}.{c}" for c in range(len(role.children))] + [f"t{j}"])
    held = "".join(f" {6 + c}>&-" for c in range(len(role.children)))  # wc must not hold a child's pipe open
    return tokens + f"tee -p {pipes} | wc -c{held} >p{j}"
