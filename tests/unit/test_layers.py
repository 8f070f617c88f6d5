"""The controller's packages import only those below them (docs/ARCHITECTURE.md, "The
house"), remote/ never imports the controller, and the controller never imports torch.

Read from the source (every import statement, at any depth, those under ``if TYPE_CHECKING:``
included), so a lazy import inside a function counts as much as one at the top, and a
types-only import from a package above is the hidden cycle it is (backends/ once took
provision's Layout and Step that way, while provision imported backends).
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Lowest first; a package may import any package earlier in this list, never a later one.
ORDER = [
    "errors",
    "localfiles",
    "terminal",
    "output",
    "data",
    "config",
    "transport",
    "contract",
    "results",
    "backends",
    "provision",
    "runs",
    "commands",
    "cli",
]
HEAVY = ("torch", "transformers", "tokenizers")


def _imports(path: Path, submodules: bool = False):
    """The modules PATH imports; SUBMODULES: `from pkg import mod` also as ``pkg.mod``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "orchestrator":
                yield from (f"orchestrator.{a.name}" for a in node.names)
            else:
                yield node.module
                if submodules:
                    yield from (f"{node.module}.{a.name}" for a in node.names)


def _package(path: Path) -> str:
    rel = path.relative_to(REPO / "orchestrator")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


CONTROLLER = sorted(
    p for p in (REPO / "orchestrator").rglob("*.py") if p.name != "__init__.py" or p.parent.name != "orchestrator"
)


@pytest.mark.parametrize("path", CONTROLLER, ids=lambda p: str(p.relative_to(REPO)))
def test_a_package_imports_only_packages_below_it(path):
    me = _package(path)
    assert me in ORDER, f"{me}: a new package; place it in ORDER here and in docs/ARCHITECTURE.md"
    above = set(ORDER[ORDER.index(me) + 1 :])
    bad = [m for m in _imports(path) if m.startswith("orchestrator.") and m.split(".")[1] in above]
    assert not bad, f"{path.relative_to(REPO)} ({me}) imports {bad}, which sit above it"
    heavy = [m for m in _imports(path) if m.split(".")[0] in HEAVY]
    assert not heavy, f"the controller never imports torch and friends: {path.relative_to(REPO)} imports {heavy}"


@pytest.mark.parametrize("path", sorted((REPO / "remote").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_remote_never_imports_the_controller(path):
    bad = [m for m in _imports(path) if m.split(".")[0] == "orchestrator"]
    assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_the_controller_uses_only_standard_library_modules_of_remote():
    # the modules a controller may import from remote/ without the host's dependencies
    allowed = {
        "remote.spec",
        "remote.data",
        "remote.files",
        "remote.jobstate",
        "remote.backends",
        "remote.backends.tmux",
        "remote.backends.slurm",  # stdlib only: its batch script and live states (backends/slurm_steps.py)
        "remote.backends.base",
    }
    used = {m for p in CONTROLLER for m in _imports(p) if m.split(".")[0] == "remote"}
    assert used <= allowed, sorted(used - allowed)


def test_outside_its_backend_nothing_on_the_host_names_a_scheduler():
    """docs/ARCHITECTURE.md, "The job backend seam": hostctl, the wrapper and the payload ask
    a backend (remote/backends/base.py), never a scheduler's own module."""
    schedulers = {f"remote.backends.{name}" for name in ("tmux", "slurm")}
    host = [p for p in sorted((REPO / "remote").rglob("*.py")) if "backends" not in p.relative_to(REPO).parts]
    named = {str(p.relative_to(REPO)): sorted(set(_imports(p, submodules=True)) & schedulers) for p in host}
    # The warm worker exists for tmux jobs only (the tmux JobBackend's ORCH_WARM_S turns it on):
    # it starts itself as a session of the job's tmux server, through remote/backends/tmux.py.
    assert {path: found for path, found in named.items() if found} == {"remote/warm.py": ["remote.backends.tmux"]}


SCHEDULER_NAMES = ("tmux", "slurm")


def _names_a_scheduler(node: ast.expr) -> bool:
    """NODE is a scheduler's name, or a literal collection of nothing else ("tmux", ("slurm",)).
    A list that holds other words too is not one: `("tmux", "rsync", "nvidia-smi")` names
    commands a probe looks for on PATH, tmux among them."""
    if isinstance(node, ast.Constant):
        return node.value in SCHEDULER_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
        return all(isinstance(e, ast.Constant) and e.value in SCHEDULER_NAMES for e in node.elts)
    return False


def _scheduler_tests(text: str, where: str):
    """The comparisons in PATH that pick a scheduler by name: against "tmux" / "slurm", or
    of a host's ``scheduler`` against anything but the registry (config/hosts.py:
    SCHEDULERS).  Strings elsewhere (config defaults, help and messages, docs) are words, not
    decisions, and are not looked at."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        by_name = any(_names_a_scheduler(o) for o in operands)
        by_config = any(isinstance(o, ast.Attribute) and o.attr == "scheduler" for o in operands) and not any(
            isinstance(o, ast.Name) and o.id == "SCHEDULERS" for o in operands
        )
        if by_name or by_config:
            yield f"{where}:{node.lineno}: {ast.unparse(node)}"


def test_outside_its_backend_nothing_in_the_controller_picks_a_scheduler_by_name():
    """docs/ARCHITECTURE.md, "The job backend seam": the controller asks the run's JobBackend
    (orchestrator/backends/base.py) what differs, never `if scheduler == "slurm"`; only the
    backends themselves (their registry, backends.get) compare names."""
    outside = [p for p in CONTROLLER if "backends" not in p.relative_to(REPO / "orchestrator").parts]
    assert [hit for p in outside for hit in _scheduler_tests(p.read_text(), str(p.relative_to(REPO)))] == []


def test_the_scheduler_check_sees_what_it_is_meant_to():
    seen = {
        'ok = host.scheduler == "slurm"': True,
        'ok = backend.name != "tmux"': True,
        'ok = record.get("backend") in ("tmux", "slurm")': True,
        'ok = "slurm" in names': True,
        "ok = cfg.scheduler == other": True,
        "ok = host.scheduler not in SCHEDULERS": False,
        'ok = t not in ("tmux", "rsync", "nvidia-smi")': False,
        'scheduler: str = "tmux"': False,
        'say("scheduler: slurm needs a login node")': False,
    }
    for code, hit in seen.items():
        assert bool(list(_scheduler_tests(code, "probe"))) is hit, code


# What Slurm's output is made of, as a value in code: the probe's sections of Slurm's commands
# (bootstrap/probe.sh: "sinfo", "slurm-jobs"; "squeue" the other command it runs), the fields of
# a partition line read by key ("partition", "gres"), and the keys the facts are kept under.
SLURM_OUTPUT_KEYS = ("sinfo", "squeue", "slurm-jobs", "partition", "gres", "slurm_partitions", "slurm_jobs")
SLURM_FACT_FIELDS = ("slurm_partitions", "slurm_jobs")  # the same facts as an attribute (HostFacts once had)


def _reads_slurm_output(text: str, where: str):
    """Where PATH reads what Slurm's commands printed itself: a string that is exactly one of
    SLURM_OUTPUT_KEYS (a section looked up, a field read by key), or an attribute named one of
    SLURM_FACT_FIELDS.  Words in messages and docstrings ("GPU types from sinfo") are not
    looked at, nor `str.partition` calls."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and node.value in SLURM_OUTPUT_KEYS:
            yield f"{where}:{node.lineno}: {node.value!r}"
        elif isinstance(node, ast.Attribute) and node.attr in SLURM_FACT_FIELDS:
            yield f"{where}:{node.lineno}: .{node.attr}"


def test_outside_its_backend_nothing_in_the_controller_reads_slurms_output():
    """docs/ARCHITECTURE.md, "The job backend seam": what the probe finds of a scheduler's
    cluster is its backend's (JobBackend.parse_facts / fact_rows / running_step /
    cluster_gpus; Slurm's in orchestrator/backends/slurm_facts.py).  provision/ (the probe,
    the GPU facts, the bootstrap plan) and everything else asks the backend and never parses
    sinfo / squeue / gres itself.  config/slurm.py is the user's `slurm:` options (its
    `partition` and `gres` keys are words the user wrote), not Slurm's output."""
    outside = [
        p
        for p in CONTROLLER
        if "backends" not in p.relative_to(REPO / "orchestrator").parts
        and p.relative_to(REPO).as_posix() != "orchestrator/config/slurm.py"
    ]
    assert [hit for p in outside for hit in _reads_slurm_output(p.read_text(), str(p.relative_to(REPO)))] == []


def test_the_slurm_output_check_sees_what_it_is_meant_to():
    seen = {
        'if "sinfo" in sections: parts = parse(sections["sinfo"].text)': True,
        'types = [p["gres"] for p in parts if p["partition"] in wanted]': True,
        "jobs = facts.slurm_jobs": True,
        'row = f(cluster.get("slurm_partitions"))': True,
        'note = "GPU types from sinfo (gres gpu:N)"': False,
        'key, _, value = line.partition("=")': False,
        "gres = options.gres": False,
    }
    for code, hit in seen.items():
        assert bool(list(_reads_slurm_output(code, "probe"))) is hit, code
