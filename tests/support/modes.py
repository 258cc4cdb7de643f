"""File modes under KAP_HOME, checked against the least-privilege promise (README)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from kap.settings import is_published_file


def wrong_modes(home: Path, analytics_mode: int = 0o640) -> dict[str, str]:
    """Every path under home whose mode is not the one promised: {relative path: octal mode}."""
    home = home.resolve()
    home_mode = 0o710 if analytics_mode & 0o040 else 0o700
    wrong = {}

    def check(p: Path, want: int) -> None:
        have = stat.S_IMODE(os.lstat(p).st_mode)
        if have != want:
            wrong[str(p.relative_to(home)) or "."] = f"{have:o} (want {want:o})"

    check(home, home_mode)
    for dirpath, dirnames, filenames in os.walk(home):
        base = Path(dirpath)
        for d in dirnames:
            check(base / d, 0o700)
        for f in filenames:
            p = base / f
            if not p.is_symlink():
                check(p, analytics_mode if is_published_file(p, home) else 0o600)
    return wrong
