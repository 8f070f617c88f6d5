"""Find the project directory (the one holding configs/), like git finds its repo."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from orchestrator.errors import ExitCode, OrchError

# Run and job names end up in paths, tmux session names and shell commands: keep them
# to a conservative alphabet and refuse anything else instead of mangling it.  No "."
# or ":": tmux silently rewrites them in session names, and then a live job looks lost.
# Matched with fullmatch: `$` would also match before a final newline ("run\n").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def safe_name(text: str) -> str:
    """A legal name derived from free text (experiment names, labels): for names orch
    makes up itself; names the user gives are checked, never rewritten."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")[:64]
    return name or "x"


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise OrchError(
            f"illegal {kind} name {name!r}",
            ExitCode.USAGE,
            hint=f"a {kind} name is 1-64 characters from A-Z a-z 0-9 _ - and starts with a letter or digit",
        )
    return name


def control_char(text: str) -> Optional[str]:
    """The first control character in TEXT, written as an escape (e.g. '\\n'), or None.
    A path with one is read differently by a line-based parser, a shell or tmux."""
    for ch in text:
        if ord(ch) < 32 or 127 <= ord(ch) < 160:
            return repr(ch)[1:-1]
    return None


STUDIES = "studies"  # runs/studies/: not a run


@dataclass
class Project:
    root: Path

    @classmethod
    def find(cls, start: Optional[Path] = None) -> "Project":
        env = os.environ.get("ORCH_PROJECT")
        if env:
            root = Path(env).expanduser().resolve()
            if not (root / "configs").is_dir():
                raise OrchError(f"ORCH_PROJECT={env} has no configs/ folder", ExitCode.CONFIG)
            return cls(root)
        here = (start or Path.cwd()).resolve()
        for candidate in [here, *here.parents]:
            if (candidate / "configs").is_dir() and (candidate / "remote").is_dir():
                return cls(candidate)
        raise OrchError(
            f"no orch project found in {here} or any parent folder",
            ExitCode.CONFIG,
            hint="run orch inside a project (a folder with configs/ and remote/), or set ORCH_PROJECT",
        )

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        if run_id == STUDIES:
            raise OrchError(
                f"illegal run name {run_id!r}: runs/{STUDIES}/ holds the studies",
                ExitCode.USAGE,
                hint="pick another --name",
            )
        return self.runs / check_name("run", run_id)

    @property
    def studies(self) -> Path:
        return self.runs / STUDIES

    def study_dir(self, name: str) -> Path:
        """runs/studies/NAME/: the study's record (study.json) and its report."""
        return self.studies / check_name("study", name)

    def existing_run(self, run_id: Optional[str], copy_ok: bool = False) -> Path:
        """The folder of RUN, or of the newest run when RUN is None.

        A folder whose record names another run (a copy, `cp -r runs/A runs/B`) is refused
        unless ``copy_ok`` (commands that only read and write the folder here: eval,
        compare): a command that reaches the host finds a run there by the folder's name."""
        if run_id is None:
            runs = self.list_runs()
            if not runs:
                raise OrchError("no runs yet", ExitCode.RUN_STATE, hint="start one with `orch run EXPERIMENT`")
            # the newest run of its own: a copy made since is not the run the user last launched
            own = runs if copy_ok else [p for p in runs if copy_of(p) is None] or runs
            path = own[-1]
        else:
            path = self.run_dir(run_id)
            if not (path / "run.yaml").is_file():
                if path.is_dir():
                    raise not_a_run(path)
                study = self.launched_in_study(run_id)
                if study is not None:  # its folder here was deleted: the host has it
                    raise OrchError(
                        f"no run named {run_id!r} in {self.runs}: study {study[0]} launched it on {study[1]}, "
                        "and its folder here was deleted",
                        ExitCode.RUN_STATE,
                        hint=f"`orch fetch-results {run_id}` restores it from {study[1]} (and fetches its results)",
                    )
                raise OrchError(
                    f"no run named {run_id!r} in {self.runs}", ExitCode.RUN_STATE, hint="`orch runs` lists them"
                )
        other = copy_of(path)
        if other is not None and not copy_ok:
            raise copied_run(path, other)
        return path

    def launched_in_study(self, run_id: str) -> Optional[Tuple[str, str]]:
        """(study, host) when a study's record (runs/studies/*/study.json) says it launched
        RUN_ID and where; None otherwise."""
        import json

        if not self.studies.is_dir():
            return None
        for path in sorted(self.studies.glob("*/study.json")):
            try:
                runs = json.loads(path.read_text()).get("runs")
            except (OSError, ValueError, AttributeError):
                continue
            for entry in runs if isinstance(runs, list) else []:
                if not isinstance(entry, dict) or entry.get("run_id") != run_id:
                    continue
                launched = entry.get("launched")
                if isinstance(launched, dict) and isinstance(launched.get("host"), str):
                    return path.parent.name, launched["host"]
        return None

    def list_runs(self) -> List[Path]:
        """Local runs, oldest first by the launch time local.json records (run.yaml's
        modification time where it records none: touching a file must not make a run the
        newest, which `orch status` with no RUN picks)."""
        if not self.runs.is_dir():
            return []
        found = [p for p in self.runs.iterdir() if (p / "run.yaml").is_file()]
        return sorted(found, key=lambda p: (launched_at(p), p.name))

    def run_folders(self) -> List[Path]:
        """Every folder in runs/ but the studies': runs, and folders that are not (or no
        longer) whole runs, which `orch runs` lists with what is wrong."""
        if not self.runs.is_dir():
            return []
        return sorted(p for p in self.runs.iterdir() if p.is_dir() and p.name != STUDIES and not p.name.startswith("."))


def launched_at(run_dir: Path) -> Tuple[float, float]:
    """A sort key for when RUN_DIR's run was launched: local.json's launched_at, then its
    run.yaml's modification time (runs that record no launch time, or record the same)."""
    import json

    try:
        mtime = (run_dir / "run.yaml").stat().st_mtime
    except OSError:
        mtime = 0.0
    try:
        value = json.loads((run_dir / "local.json").read_text()).get("launched_at")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), mtime
    except (OSError, ValueError, AttributeError):
        pass
    return mtime, mtime


def not_a_run(path: Path) -> OrchError:
    """The error for a folder in runs/ that holds no run.yaml: what it is, and what to do."""
    try:
        empty = not any(path.iterdir())
    except OSError:  # gone meanwhile (a launch that gave its name back), or unreadable
        empty = True
    if empty:
        return OrchError(
            f"{path} is an empty folder: an `orch run` is launching it right now, or a launch stopped "
            "before it recorded the run (then nothing of it reached a host)",
            ExitCode.RUN_STATE,
            hint=f"when no orch command is launching it, remove it (`rmdir {path}`) to use the name again",
        )
    if (path / "local.json").is_file():
        return OrchError(
            f"{path} has no run.yaml (the run's resolved config): removed, or never written",
            ExitCode.RUN_STATE,
            hint="the host keeps the same file as <workdir>/runs/" + path.name + "/run.yaml (local.json "
            "names the host and workdir): copy it back here",
        )
    return OrchError(f"{path} is not a run folder (no run.yaml, no local.json)", ExitCode.RUN_STATE)


def copy_of(run_dir: Path) -> Optional[str]:
    """The run whose record RUN_DIR holds when that is not RUN_DIR's own name: a run folder
    copied under another name (`cp -r runs/A runs/B`); None for a run's own folder (or a
    record too old or damaged to say: the commands that read it say what is wrong)."""
    import json

    try:
        named = json.loads((run_dir / "local.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return named if isinstance(named, str) and NAME_RE.fullmatch(named) and named != run_dir.name else None


def copied_run(path: Path, other: str) -> OrchError:
    """The error for a command that would reach the host with a copied run folder PATH,
    whose record is run OTHER's: it would ask the host for a run named after the folder,
    which is not the run the record describes."""
    original = path.parent / other
    if (original / "run.yaml").is_file():
        mend = f"run {other}'s own folder is {original} (`orch status {other}`); "
    else:
        mend = f"{original} is gone: `mv {path} {original}` makes this folder run {other} again; "
    return OrchError(
        f"{path} is a copy of run {other}'s folder (its local.json names run {other}), not a run of its own: "
        f"orch finds a run on its host by the folder's name, so it would reach a run {path.name} there with "
        f"run {other}'s record; it does not act on this folder",
        ExitCode.RUN_STATE,
        hint=mend + f"`orch eval {path.name}` evaluates the copy here; to keep it as a copy, move it out of runs/",
    )
