"""docker diff from an overlay upper dir: A/C/D, whiteouts, runtime paths hidden."""

from __future__ import annotations

import os
from pathlib import Path

from katadocker.engine.changes import changes


def test_changes_from_upper_dir(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "bin", "usr/lib", "proc"):
        (lower / d).mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root")
    (lower / "bin" / "gone").write_text("x")
    (lower / "usr" / "lib" / "untouched").write_text("x")
    for d in ("etc", "bin", "usr/lib", "tmp/new", "proc", "dev"):
        (upper / d).mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("changed")
    (upper / "etc" / "hosts").write_text("runtime")  # provided by the runtime: hidden
    os.mknod(upper / "bin" / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # whiteout
    (upper / "tmp" / "new" / "file").write_text("added")
    assert [str(c) for c in changes(upper, [lower])] == [
        "C /bin", "D /bin/gone", "C /etc", "C /etc/passwd", "A /tmp", "A /tmp/new", "A /tmp/new/file"]
