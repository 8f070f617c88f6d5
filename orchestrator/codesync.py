"""Content-addressed code snapshots: <workdir>/code/<hash>/ holds exactly what jobs need.

A run pins its snapshot, so syncing again while jobs run never changes their code, and
unchanged code is never sent twice (the snapshot's `.complete` marker says it is there).
"""
from __future__ import annotations

import fnmatch
import hashlib
import subprocess
from pathlib import Path
from typing import List, Tuple

from . import shell
from .filesync import push_files
from .transport import Transport

# Only what the host needs.  Data is staged separately, content-addressed.  Host configs
# are the controller's (nothing in remote/ or bootstrap/ reads them; experiments travel
# resolved in run.yaml): shipping them made every `python:` that bootstrap records, or
# any other host edit, a new snapshot.
SYNC_DIRS = ("remote", "bootstrap", "configs")
EXCLUDE_DIRS = ("configs/data", "configs/hosts")
# Leftovers of interrupted syncs are removed by the next sync's first round trip.  An hour
# is far longer than a sync takes, so a staging folder that another sync is still filling
# is left alone.
STALE_STAGING_MINUTES = 60
_CHECK = """
find "$1" -mindepth 1 -maxdepth 1 -type d -name ".staging-*" -mmin +"$3" -exec rm -rf -- {} + 2>/dev/null
test -f "$2"
"""
# Never ship secrets or junk, whatever .gitignore says.
NEVER = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", "*.pyc",
         "__pycache__", ".DS_Store", "*.tmp", ".git")


def _never(rel: str) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(part, pat) for part in parts for pat in NEVER)


def _git_files(root: Path) -> List[str]:
    """Tracked + untracked-but-not-ignored files (respects .gitignore), or [] without git."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SYNC_DIRS],
            capture_output=True, check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    return [f for f in proc.stdout.decode().split("\0") if f]


def snapshot_files(root: Path) -> List[str]:
    files = _git_files(root)
    if not files:
        files = [str(p.relative_to(root)) for d in SYNC_DIRS for p in (root / d).rglob("*") if p.is_file()]
    keep = []
    for rel in sorted(set(files)):
        if _never(rel) or any(rel == d or rel.startswith(d + "/") for d in EXCLUDE_DIRS):
            continue
        if (root / rel).is_file():  # deleted-but-tracked files are skipped
            keep.append(rel)
    return keep


def snapshot_hash(root: Path, files: List[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return digest.hexdigest()[:16]


def check_command(workdir: str, code_hash: str) -> str:
    """Exit 0 when the snapshot is complete; on the way, drop stale staging folders."""
    marker = f"{workdir}/code/{code_hash}/.complete"
    return shell.join(["sh", "-c", _CHECK, "sh", f"{workdir}/code", marker, str(STALE_STAGING_MINUTES)])


def sync_code(transport: Transport, root: Path, workdir: str, rsync: bool) -> Tuple[str, int]:
    """Make sure <workdir>/code/<hash>/ exists on the host; return (hash, files sent)."""
    files = snapshot_files(root)
    code_hash = snapshot_hash(root, files)
    dest = f"{workdir}/code/{code_hash}"
    if transport.run(check_command(workdir, code_hash), check=False).rc == 0:
        return code_hash, 0
    staging = f"{workdir}/code/.staging-{code_hash}"
    transport.run(shell.join(["mkdir", "-p", "--", staging]))
    sent = push_files(transport, root, files, staging, rsync)
    # Publish atomically: a half-synced snapshot is never used by a job.
    transport.run(shell.chain(
        shell.join(["touch", f"{staging}/.complete"]),
        shell.join(["rm", "-rf", "--", dest]),
        shell.join(["mv", "--", staging, dest]),
    ))
    return code_hash, sent
