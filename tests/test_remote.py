"""The remote commands run by a real local shell on a hand-made host layout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from console.fleet import remote


def sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


def test_survey_reads_current_every_release_its_manifest_and_every_asset(tmp_path: Path):
    old, new, bare = "20261122T100000Z-aaaaaaa", "20261122T110000Z-bbbbbbb", "20261122T120000Z-ccccccc"
    for release, manifest in ((old, '{"a.css": "/assets/a-1.css"}'), (new, '{\n "a.css": "/assets/a-2.css"\n}')):
        (tmp_path / "releases" / release).mkdir(parents=True)
        (tmp_path / "releases" / release / "manifest.json").write_text(manifest + "\n")
    (tmp_path / "releases" / bare).mkdir()  # a staging that never got its manifest
    (tmp_path / "assets" / "css").mkdir(parents=True)
    for name in ("a-1.css", "css/a-2.css"):
        (tmp_path / "assets" / name).write_text("x")
    (tmp_path / "current").symlink_to(f"releases/{new}")

    s = remote.parse_survey(sh(remote.survey(str(tmp_path))))

    assert s.current == new
    assert s.manifests == {
        old: '{"a.css": "/assets/a-1.css"}\n',
        new: '{\n "a.css": "/assets/a-2.css"\n}\n',
        bare: None,
    }
    assert sorted(s.assets) == ["a-1.css", "css/a-2.css"]


def test_survey_of_an_empty_deploy_path(tmp_path: Path):
    s = remote.parse_survey(sh(remote.survey(str(tmp_path))))
    assert (s.current, s.manifests, s.assets) == ("", {}, [])


def test_a_revisions_log_line_cannot_be_forged():
    """`activate` writes `time release user` to revisions.log: both are one line or refused."""
    import pytest

    from console.core.errors import ConsoleError

    good = remote.activate("/srv/www", "20261122T101500Z-ab12cd3", "alice (Alice Smith)")
    assert "revisions.log" in good and "'20261122T101500Z-ab12cd3 alice (Alice Smith)'" in good
    with pytest.raises(ConsoleError, match="user: expected one line"):
        remote.activate("/srv/www", "20261122T101500Z-ab12cd3", "alice\n2026-01-01T00:00:00Z x bob")
    with pytest.raises(ConsoleError, match="is not a release id"):
        remote.activate("/srv/www", "20261122T101500Z-ab12cd3\n2026 forged", "alice")
