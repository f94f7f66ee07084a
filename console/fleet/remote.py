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
    tar, rm and the survey's awk and find). First prove the host is at `base` as built:
    `current` and REVISION name it, every asset in `needed` is there, and the files of
    `base` to link (`linked`) have the build's `linked_stat`. Then the assets' tar (its
    first `assets_bytes`), each new asset whole before its name, and their staging
    directory goes; then the code's, hard links to `base`'s files and the changed ones,
    REVISION last. Then cleanup's survey. Prints STAGED, or FALLBACK and why, having
    changed nothing; a failed tar removes what it staged and exits ASSETS_FAILED or
    CODE_FAILED."""
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
            f"head -c {assets_bytes} | tar -x -p --skip-old-files -f - || {{ rm -rf {incoming}; exit {ASSETS_FAILED}; }}",
            f"rm -rf {incoming} || exit {ASSETS_FAILED}",
        ]
    lines.append(f"tar -x -p -f - || {{ rm -rf {new}; exit {CODE_FAILED}; }}")
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
