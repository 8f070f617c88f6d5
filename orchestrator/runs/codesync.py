"""Content-addressed code snapshots: <workdir>/code/<hash>/ holds exactly what jobs need.

A run pins its snapshot, so syncing again while jobs run never changes their code, and
unchanged code is never sent twice (the snapshot's `.complete` marker says it is there).

What goes in (``snapshot_files``): in a git repository, the files git tracks under
remote/, bootstrap/ and configs/, plus untracked files on the allow-list (ALLOW: the
kinds of file the host needs, so a new module works before it is committed); outside
git, only the allow-list.  Never, tracked or not: editor backups, credentials and keys
(NEVER).  An untracked `run_job.py~` holding a token once went to the host because the
rule was "everything not excluded".

Publication (``sync_code``) is race-free: each sync fills its own staging folder and
publishes it with one rename; a complete snapshot is never deleted, so two launches
that send the same new code at once both end up on the one complete snapshot.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

from orchestrator.transport import shell
from orchestrator.transport.base import Transport

SYNC_DIRS = ("remote", "bootstrap", "configs")
# Host configs are the controller's (nothing in remote/ or bootstrap/ reads them;
# experiments travel resolved in run.yaml): shipping them made every `python:` that
# bootstrap records a new snapshot.  Data is staged separately, content-addressed.
EXCLUDE_DIRS = ("configs/data", "configs/hosts")
# Untracked files are shipped only when they are of a kind the host needs.
ALLOW = (
    ("remote/", (".py",)),
    ("bootstrap/", (".sh", ".py")),
    ("configs/envs/", (".yaml", ".yml")),
    ("configs/experiments/", (".yaml", ".yml")),
)
# Never shipped, tracked or not (matched against every part of the path, ignoring case:
# `Prod_SECRET.yaml` and `ID_ED25519` are as secret as their lower-case spellings, and
# fnmatch is case-sensitive on Linux and macOS).  Patterns are written in lower case.
NEVER = (
    "*~",
    ".#*",
    "#*#",
    "*.swp",
    "*.swo",
    ".*.sw?",
    "*.orig",
    "*.bak",
    "*.rej",  # editors, patches
    ".netrc",
    ".pypirc",
    ".git-credentials",
    ".npmrc",
    ".pgpass",
    ".htpasswd",
    ".env*",  # .env, .env.prod, .envrc (direnv)
    "*.env",
    "*secret*",
    "credentials",  # ~/.aws/credentials
    "credentials.*",
    "*credentials*.json",  # gcloud application_default_credentials.json
    "*service-account*.json",
    "*service_account*.json",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.ppk",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.pyc",
    "__pycache__",
    ".DS_Store",
    "*.tmp",
    ".git",
)
# "token" as a word (hf_token, .token, tokens.json), not as part of one (tokenizer.py).
_TOKEN_WORD = re.compile(r"(?:^|[^a-z])tokens?(?:[^a-z]|$)", re.IGNORECASE)
# Leftovers of interrupted syncs are removed by the next sync's first round trip.  An hour
# is far longer than a sync takes, so a staging folder that another sync is still filling
# is left alone.
STALE_STAGING_MINUTES = 60
_CHECK = """
find "$1" -mindepth 1 -maxdepth 1 -type d -name ".staging-*" -mmin +"$3" -exec rm -rf -- {} + 2>/dev/null
test -f "$2"
"""
# Publish STAGING as DEST with one rename (run by the host's python: `mv` has no portable
# "rename, never into" flag).  rename(2) of a folder never replaces a non-empty one, so a
# complete snapshot published meanwhile by another sync wins and this copy is dropped.
_PUBLISH = r"""
import os, shutil, sys
staging, dest, aside = sys.argv[1:4]
def complete():
    return os.path.isfile(os.path.join(dest, ".complete"))
open(os.path.join(staging, ".complete"), "w").close()
if not complete():
    if os.path.isdir(dest):
        # A folder without the marker is no snapshot (orch never makes one): set it aside
        # for the stale-staging cleanup rather than deleting what someone may be looking at.
        try:
            os.rename(dest, aside)
        except OSError:
            pass
    try:
        os.rename(staging, dest)
        print("published")
        sys.exit(0)
    except OSError as exc:
        if not complete():
            sys.exit("cannot publish %s: %s" % (dest, exc))
shutil.rmtree(staging, ignore_errors=True)
print("present")
"""


def _never(rel: str) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatchcase(part.lower(), pat) for part in parts for pat in NEVER) or any(
        _TOKEN_WORD.search(part) for part in parts
    )


def _allowed(rel: str) -> bool:
    return any(rel.startswith(prefix) and rel.endswith(suffixes) for prefix, suffixes in ALLOW)


def _git(root: Path, *args: str) -> Optional[List[str]]:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args, "-z", "--", *SYNC_DIRS], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return [f for f in proc.stdout.decode().split("\0") if f]


def snapshot_files(root: Path) -> List[str]:
    tracked = _git(root, "ls-files", "--cached")  # None: not in a git work tree (or no git)
    untracked = _git(root, "ls-files", "--others", "--exclude-standard") if tracked is not None else None
    if not tracked and not untracked:
        # No git, or a repository that ignores the whole project (a dotfiles repo in $HOME):
        # the allow-list alone decides.
        tracked, untracked = [], [p.relative_to(root).as_posix() for d in SYNC_DIRS for p in (root / d).rglob("*")]
    candidates = set(tracked or []) | {f for f in untracked or [] if _allowed(f)}
    keep = []
    for rel in sorted(candidates):
        if _never(rel) or any(rel == d or rel.startswith(d + "/") for d in EXCLUDE_DIRS):
            continue
        path = root / rel
        # Deleted-but-tracked files are skipped, and links: one could point at a secret
        # outside the project, and a host cannot follow a link to this laptop anyway.
        if path.is_file() and not path.is_symlink():
            keep.append(rel)
    return keep


def host_mode(path: Path) -> int:
    """The mode a file gets on the host: 0755 if it is executable here, else 0644 (as git
    records modes), whatever the local umask or a chmod made of it."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


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


def sync_code(transport: Transport, root: Path, workdir: str) -> Tuple[str, int]:
    """Make sure <workdir>/code/<hash>/ exists on the host; return (hash, files sent)."""
    files = snapshot_files(root)
    code_hash = snapshot_hash(root, files)
    dest = f"{workdir}/code/{code_hash}"
    if transport.run(check_command(workdir, code_hash), check=False).rc == 0:
        return code_hash, 0
    # A staging folder of its own: another sync of the same code may be filling another.
    unique = secrets.token_hex(6)
    staging = f"{workdir}/code/.staging-{code_hash}-{unique}"
    transport.run(shell.join(["mkdir", "-p", "--", staging]))
    sent = transport.push_tree(root, files, staging)
    transport.run(
        shell.join(
            [
                transport.host.python_or_default,
                "-S",
                "-c",
                _PUBLISH,
                staging,
                dest,
                f"{workdir}/code/.staging-broken-{code_hash}-{unique}",
            ]
        )
    )
    return code_hash, sent
