"""builda: hashed asset names, the manifest, and content-derived mtimes for --link-dest."""

from __future__ import annotations

from pathlib import Path

from console.trunk.build import hashed_name, stamp_by_content


def test_hashed_names_change_only_with_content():
    a = hashed_name(Path("css/shop.css"), b"body{}")
    assert a.parent == Path("css") and a.suffix == ".css" and a.stem.startswith("shop.")
    assert hashed_name(Path("css/shop.css"), b"body{}") == a
    assert hashed_name(Path("css/shop.css"), b"body{x}") != a


def test_mtimes_follow_content_so_link_dest_never_links_a_changed_file(tmp_path: Path):
    """Two REVISION files of the same size written in the same second must differ for
    rsync's quick check, and an unchanged file must match (so it is hard-linked)."""
    old, new = tmp_path / "old", tmp_path / "new"
    for tree, revision in ((old, "a" * 40), (new, "b" * 40)):
        tree.mkdir()
        (tree / "REVISION").write_text(revision + "\n")
        (tree / "app.py").write_text("print('same')\n")
        stamp_by_content(tree)
    assert (old / "REVISION").stat().st_mtime != (new / "REVISION").stat().st_mtime
    assert (old / "app.py").stat().st_mtime == (new / "app.py").stat().st_mtime
