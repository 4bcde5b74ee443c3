"""File helpers shared by the training steps: atomic JSON, checksums, the commit."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

__all__ = ["write_json", "sha256", "git_commit"]


def write_json(path, payload):
    """Write ``payload`` as indented JSON, atomically.

    A run killed mid-write must leave either the old file or none: resuming
    trusts every file it finds (``done.json`` marks a finished fold).

    Parameters
    ----------
    path : path-like
        Destination file.
    payload : object
        Anything `json.dumps` accepts.
    """
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def sha256(path):
    """Hex SHA-256 of a file's bytes (the checksum a manifest records for each member).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit():
    """The repository's current commit, or `None` outside a git checkout.

    Returns
    -------
    str or None
    """
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
