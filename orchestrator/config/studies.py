"""Study configs: configs/studies/NAME.yaml -> a validated plan of runs (docs/STUDIES.md).

A study is one comparison: a base experiment, members (override sets on it) and seeds.
Every (member, seed) becomes an ordinary run, ``STUDY-MEMBER-sSEED``.  Checked here,
before anything reaches a host:

- every key of every member, as the experiment loader checks it (errors name the file,
  the member and the key);
- the seeds are the study's: a member may not set ``train.seed``/``pretrain.seed``/
  ``score.seed`` itself;
- every member scores **the same test set**: members may not override ``data.*``, and the
  resolved data sections are compared, so paired tests between members are valid;
- ensembles name at least two members;
- ``compare:`` names the study's primary comparisons (pairs of members or ensembles, or
  ``{against: NAME}``: every other member against NAME): the report corrects for multiple
  testing over those only, and the other pairs are exploratory (docs/STUDIES.md).

Members whose pretraining is the same (same data, architecture, pretrain settings and
seed; the pretrain kind, so a classifier shares a GPT's) share one pretrain job: the first
such run trains it and the others start from it (``pretrain.from_run``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence

from orchestrator.config import experiments
from orchestrator.config.project import Project, check_name
from orchestrator.config.yamlfile import read_mapping
from orchestrator.errors import ExitCode, OrchError
from remote.spec import Experiment, SpecError, load_experiment, pretrain_kind_name, set_dotted, to_dict

TOP_KEYS = ("name", "description", "base", "host", "seeds", "set", "members", "ensembles", "compare")
# The study sets these from its seeds: model init, data order, dropout, MDLM draws.
SEED_KEYS = ("train.seed", "pretrain.seed", "score.seed")


@dataclass
class StudyRun:
    """One (member, seed) of a study: an ordinary run."""

    member: str
    seed: int
    run_id: str
    exp: Experiment
    pretrain_from: str = ""  # the run whose pretrain job this one starts from ("" = none or its own)

    @property
    def owns_pretrain(self) -> bool:
        return self.exp.pretrain.enabled and not self.pretrain_from

    def fingerprint(self) -> str:
        """What the run is, for telling whether a study file changed since its launch."""
        return hashlib.sha256(json.dumps(to_dict(self.exp), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Study:
    name: str
    path: Path
    base: str
    host: str
    seeds: List[int]
    members: Dict[str, Dict[str, Any]]  # member -> its overrides (dotted keys)
    shared: Dict[str, Any] = field(default_factory=dict)  # `set:`, on every member
    ensembles: Dict[str, List[str]] = field(default_factory=dict)
    # the primary comparisons, [[a, b], ...] (members or ensembles); [] = none declared: every pair
    compare: List[List[str]] = field(default_factory=list)
    description: str = ""
    runs: List[StudyRun] = field(default_factory=list)
    # the files it was read from, as sha256 of their bytes: `study status` and `report` tell
    # from these alone (no YAML) whether the study file or its base changed since study.json
    files: Dict[str, str] = field(default_factory=dict)

    def resolved(self) -> Dict[str, Any]:
        """The study as study.json records it (and the report reads)."""
        return {
            "name": self.name,
            "file": str(self.path),
            "description": self.description,
            "base": self.base,
            "host": self.host,
            "seeds": list(self.seeds),
            "set": dict(self.shared),
            "members": {m: dict(o) for m, o in self.members.items()},
            "ensembles": {e: list(ms) for e, ms in self.ensembles.items()},
            "compare": [list(p) for p in self.compare],
            "files": dict(self.files),
            "runs": [
                {
                    "member": r.member,
                    "seed": r.seed,
                    "run_id": r.run_id,
                    "pretrain_from": r.pretrain_from,
                    "fingerprint": r.fingerprint(),
                }
                for r in self.runs
            ],
        }


def study_path(project: Project, name: str) -> Path:
    known = sorted(p.stem for p in (project.configs / "studies").glob("*.yaml"))
    hint = "known studies: " + (", ".join(known) or "none") + " (configs/studies/NAME.yaml)"
    if experiments.is_path(name):
        candidate = Path(name).expanduser()
        if candidate.is_file():
            return candidate.resolve()
        raise OrchError(f"study file {name} does not exist", ExitCode.CONFIG, hint=hint)
    path = project.configs / "studies" / f"{name}.yaml"
    if not path.is_file():
        raise OrchError(f"no study {name!r} ({path} does not exist)", ExitCode.CONFIG, hint=hint)
    return path


def load(project: Project, name: str, host: Optional[str] = None) -> Study:
    """Read, check and resolve a study: every run it makes, validated."""
    path = study_path(project, name)
    raw = read_mapping(path)
    where = str(path)

    def bad(key: str, what: str, hint: str = "") -> OrchError:
        return OrchError(f"{where}: key '{key}': {what}", ExitCode.CONFIG, hint=hint or None)

    unknown = [k for k in raw if k not in TOP_KEYS]
    if unknown:
        raise bad(unknown[0], "unknown key", "a study has: " + ", ".join(TOP_KEYS))
    study_name = raw.get("name", path.stem)
    if not isinstance(study_name, str):
        raise bad("name", f"expected a name, got {study_name!r}")
    try:
        check_name("study", study_name)
    except OrchError as exc:
        raise bad("name", exc.message, exc.hint or "") from None
    base = raw.get("base")
    if not isinstance(base, str) or not base:
        raise bad("base", "required: the experiment every member starts from", "e.g. base: smoke")
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise bad("seeds", f"expected a list of integers >= 0, got {seeds!r}", "e.g. seeds: [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise bad("seeds", f"a seed is listed twice: {seeds}")
    shared = _overrides(raw.get("set") or {}, "set", bad)
    members_raw = raw.get("members")
    if not isinstance(members_raw, dict) or not members_raw:
        raise bad(
            "members", "required: a mapping of member name -> overrides", "e.g. members: {gpt2: {model.kind: ar}}"
        )
    members: Dict[str, Dict[str, Any]] = {}
    for member, overrides in members_raw.items():
        _check_member_name(str(member), "members", bad)
        members[str(member)] = _overrides(overrides or {}, f"members.{member}", bad)
    ensembles = _ensembles(raw.get("ensembles") or {}, members, bad)
    compare = _compare(raw["compare"], members, ensembles, bad) if "compare" in raw else []
    description = raw.get("description") or ""
    study = Study(
        name=study_name,
        path=path,
        base=base,
        host="",
        seeds=list(seeds),
        members=members,
        shared=shared,
        ensembles=ensembles,
        compare=compare,
        description=str(description),
    )
    base_path = experiments.experiment_path(project, base)
    base_raw = read_mapping(base_path)
    study.files = {str(p): file_sha256(p) for p in (path, base_path)}
    base_raw.setdefault("name", Path(base).stem)
    for member, overrides in members.items():
        for seed in seeds:
            exp = _member_experiment(base_raw, member, {**shared, **overrides}, seed, where)
            run_id = f"{study_name}-{member}-s{seed}"
            try:
                check_name("run", run_id)
            except OrchError:
                raise bad(
                    f"members.{member}",
                    f"the run id {run_id!r} is longer than 64 characters",
                    "shorten the study or member name",
                ) from None
            study.runs.append(StudyRun(member, seed, run_id, exp))
    study.host = host or raw.get("host") or study.runs[0].exp.host
    if not isinstance(study.host, str) or not study.host:
        raise bad("host", "no host: set `host:` in the study or the base experiment, or pass --host")
    _check_same_test_set(study, where)
    share_pretrain(study)
    return study


def file_sha256(path: Path) -> str:
    """PATH's bytes' sha256 ("" when it cannot be read: read_mapping said why already)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _check_member_name(name: str, key: str, bad) -> None:
    try:
        check_name("member", name)
    except OrchError as exc:
        raise bad(key, exc.message, exc.hint or "") from None


def _overrides(value: Any, key: str, bad) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(key, f"expected a mapping of dotted keys to values, got {value!r}", "e.g. {model.kind: mdlm}")
    out: Dict[str, Any] = {}
    for dotted, v in value.items():
        dotted = str(dotted)
        if dotted in SEED_KEYS:
            raise bad(f"{key}.{dotted}", "the study's `seeds` set the seeds", "remove it; list the seeds in `seeds:`")
        if dotted.split(".")[0] == "data" and key != "set":
            raise bad(
                f"{key}.{dotted}",
                "members may not change the data: every member must score the same test set",
                "change the data in the base experiment or the study's `set:`",
            )
        if dotted in ("name", "host") or dotted.startswith("pretrain.from_run"):
            raise bad(f"{key}.{dotted}", "set by the study itself")
        out[dotted] = v
    return out


def _ensembles(value: Any, members: Dict[str, Dict], bad) -> Dict[str, List[str]]:
    if not isinstance(value, dict):
        raise bad("ensembles", f"expected a mapping of name -> [member, member, ...], got {value!r}")
    out: Dict[str, List[str]] = {}
    for name, parts in value.items():
        name = str(name)
        _check_member_name(name, f"ensembles.{name}", bad)
        if name in members:
            raise bad(f"ensembles.{name}", "already the name of a member")
        if not isinstance(parts, list) or len(parts) < 2 or len(set(map(str, parts))) != len(parts):
            raise bad(f"ensembles.{name}", f"expected a list of two or more distinct members, got {parts!r}")
        missing = [str(p) for p in parts if str(p) not in members]
        if missing:
            raise bad(f"ensembles.{name}", f"no member named {missing[0]!r}", "members: " + ", ".join(members))
        out[name] = [str(p) for p in parts]
    return out


COMPARE_HINT = "e.g. compare: [[gpt2, classifier], [mdlm, simple-diffusion]], or compare: {against: classifier}"


def _compare(value: Any, members: Dict[str, Dict], ensembles: Dict[str, List[str]], bad) -> List[List[str]]:
    """The primary comparisons: a list of [a, b] pairs of members or ensembles, or
    {against: NAME} (every other member against NAME, in member order)."""
    rows = list(members) + list(ensembles)
    known = "members and ensembles: " + ", ".join(rows)

    def row(item: Any, key: str) -> str:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise bad(key, f"expected a member or ensemble name, got {item!r}", known)
        if str(item) not in rows:
            raise bad(key, f"no member or ensemble named {str(item)!r}", known)
        return str(item)

    if isinstance(value, dict):
        extra = [k for k in value if k != "against"]
        if extra or "against" not in value:
            raise bad(f"compare.{extra[0]}" if extra else "compare", "the short form is {against: NAME}", COMPARE_HINT)
        against = row(value["against"], "compare.against")
        pairs = [[m, against] for m in members if m != against]
        if not pairs:
            raise bad("compare.against", f"no other member to compare with {against!r}")
        return pairs
    if not isinstance(value, list) or not value:
        raise bad("compare", f"expected a list of [a, b] pairs or {{against: NAME}}, got {value!r}", COMPARE_HINT)
    pairs: List[List[str]] = []
    seen: Dict[frozenset, int] = {}
    for i, pair in enumerate(value):
        key = f"compare[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise bad(key, f"expected a pair [a, b], got {pair!r}", COMPARE_HINT)
        a, b = row(pair[0], f"{key}[0]"), row(pair[1], f"{key}[1]")
        if a == b:
            raise bad(key, f"compares {a!r} with itself", "a pair names two different members or ensembles")
        first = seen.setdefault(frozenset((a, b)), i)
        if first != i:
            raise bad(key, f"the pair {a} vs {b} is compare[{first}] already (a pair is the same either way round)")
        pairs.append([a, b])
    return pairs


def _member_experiment(base_raw: Dict, member: str, overrides: Dict[str, Any], seed: int, where: str) -> Experiment:
    raw = copy.deepcopy(base_raw)
    label = f"{where}: member {member!r} (seed {seed})"
    try:
        for key, value in overrides.items():
            set_dotted(raw, key, value)
        for key in SEED_KEYS:
            set_dotted(raw, key, seed)
        return load_experiment(raw, label)
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG) from None


def _check_same_test_set(study: Study, where: str) -> None:
    """Checked, not assumed: the paired tests of the report need every member to score the
    same texts (same files, split seed and fractions)."""
    first = study.runs[0]
    want = to_dict(first.exp)["data"]
    for run in study.runs[1:]:
        got = to_dict(run.exp)["data"]
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        if diff:
            raise OrchError(
                f"{where}: member {run.member!r} would score another test set than {first.member!r} "
                f"(data.{diff[0]}: {got.get(diff[0])!r} vs {want.get(diff[0])!r})",
                ExitCode.CONFIG,
                hint="every member of a study must use the same data; set it in the base experiment",
            )


def pretrain_identity(exp: Experiment) -> Optional[str]:
    """Runs with the same identity can share one pretrain job: what the pretrain job reads
    (data, the architecture it builds, its own settings) and nothing else."""
    if not exp.pretrain.enabled:
        return None
    doc = to_dict(exp)
    model = dict(doc["model"], kind=pretrain_kind_name(exp.model.kind))
    pretrain = dict(doc["pretrain"], from_run="")
    return json.dumps({"data": doc["data"], "model": model, "pretrain": pretrain}, sort_keys=True)


def share_pretrain(study: Study, first: Collection[str] = ()) -> None:
    """Runs with one pretrain identity share the pretrain job of the first of them, in
    member order, or of one in FIRST (the runs launched already) when there is one: a member
    added above them must not take the pretrain over from a launched run (its config would
    change under it)."""
    owners: Dict[str, str] = {}
    ordered = [r for r in study.runs if r.run_id in first] + [r for r in study.runs if r.run_id not in first]
    for run in ordered:
        run.pretrain_from = ""
        run.exp.pretrain.from_run = ""
    for run in ordered:
        key = pretrain_identity(run.exp)
        if key is None:
            continue
        if key in owners:
            run.pretrain_from = owners[key]
            run.exp.pretrain.from_run = owners[key]
        else:
            owners[key] = run.run_id


def only(study: Study, members: Sequence[str]) -> List[StudyRun]:
    """The runs of the members named by --only (all when none), checked."""
    if not members:
        return list(study.runs)
    unknown = [m for m in members if m not in study.members]
    if unknown:
        raise OrchError(
            f"study {study.name} has no member {unknown[0]!r}",
            ExitCode.USAGE,
            hint="members: " + ", ".join(study.members),
        )
    return [r for r in study.runs if r.member in members]
