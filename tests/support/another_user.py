"""Reading a file as another user: the web server that serves EFI's results.

``nobody`` stands for the web server's user; the group given is its only group, so what it
can read is what the file's group and mode allow (tests run as root, which reads anything).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def read_as(group: str, path: Path) -> subprocess.CompletedProcess[str]:
    """``cat path`` as ``nobody`` with ``group`` as its only group (``returncode`` 0: read)."""
    return subprocess.run(["setpriv", "--reuid=nobody", f"--regid={group}", "--clear-groups",
                           "cat", "--", str(path)], capture_output=True, text=True, check=False)
