"""One vocabulary of job and run states: the controller's run and command code compares a
state with remote/jobstate.py's constants (and runs/state.py's run-level EMPTY, MIXED),
never with a string literal, so a word changed or added in one place is changed everywhere.

Read from the source: every comparison whose one side names a state (``r.state``,
``run_state(rows)``, ``states``) and whose other side holds one of those words as a literal.
"""

import ast
from pathlib import Path

from orchestrator.runs.state import EMPTY, MIXED
from remote.jobstate import CANCELLED, FAILED, LOST, NO_RESULTS, SHOWN, UNKNOWN

REPO = Path(__file__).resolve().parents[2]
WORDS = set(SHOWN) | {EMPTY, MIXED}
# Where job and run states are read; provision/ has its own step states (todo, done, ...).
PACKAGES = ("orchestrator/runs", "orchestrator/commands")


def _literals(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        return [w for e in node.elts for w in _literals(e)]
    if isinstance(node, ast.BinOp):
        return _literals(node.left) + _literals(node.right)
    return []


def _literal_state_compares():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                sides = [node.left, *node.comparators]
                if not any("state" in ast.unparse(s) for s in sides):
                    continue
                if any(w in WORDS for s in sides for w in _literals(s)):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_states_are_compared_with_the_constants():
    assert _literal_state_compares() == []


def test_the_states_without_results_are_one_named_tuple():
    # study status's reason and study report's missing runs read the same set
    assert set(NO_RESULTS) == {FAILED, LOST, CANCELLED, UNKNOWN}
