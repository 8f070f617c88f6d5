"""The experiment schema: one typed description of a run, shared by both sides.

Standard library only, so the controller can validate configs without torch and the
host can read the resolved ``run.yaml`` without the controller.  Every error names
where the value came from, the dotted key and what was expected.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Union


@dataclass(frozen=True)
class KindFacts:
    """What both sides need to know of a model kind, without importing its module (torch)."""

    noun: str  # how a report names a model of the kind
    discriminative: bool  # one "classifier" job learns every class, not one model per class
    draws: bool  # scored with random draws (score.mdlm_draws, per-draw values, adaptive draws)


KINDS = {
    "ar": KindFacts("an autoregressive LM", discriminative=False, draws=False),
    "mdlm": KindFacts("an MDLM", discriminative=False, draws=True),
    "mlm-pll": KindFacts("a masked LM (pseudo-log-likelihood)", discriminative=False, draws=False),
    "classifier": KindFacts("a discriminative classifier", discriminative=True, draws=False),
}


def scored_with_draws(kind: str) -> bool:
    facts = KINDS.get(kind)
    return bool(facts and facts.draws)


def discriminative(kind: str) -> bool:
    facts = KINDS.get(kind)
    return bool(facts and facts.discriminative)


def training_role(kind: str) -> str:
    """The role of the jobs that train an experiment's models (run.yaml's jobs, the payload's
    roles): one "classifier" job for a discriminative kind, else a "class" job per class."""
    return "classifier" if discriminative(kind) else "class"


class SpecError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


@dataclass
class DataSpec:
    # "file": local JSONL/CSV (optionally .gz) the controller uploads; "hf": a dataset
    # name the host downloads itself (needs internet there).
    source: str = "file"
    path: str = ""  # labelled texts (file) or HF dataset name (hf)
    test_path: str = ""  # separate labelled test file; empty -> seeded split of `path`
    unlabelled_path: str = ""  # texts for the optional pretrain stage
    hf_train_split: str = "train"
    hf_test_split: str = "test"
    hf_unlabelled_split: str = "unsupervised"
    format: str = "auto"  # auto | jsonl | csv
    text_field: str = "text"
    label_field: str = "label"
    id_field: str = "id"  # missing ids fall back to "<file>:<line>"
    classes: List[str] = field(default_factory=list)  # [] -> every label seen in train
    class_names: Dict[str, str] = field(default_factory=dict)  # label -> job name
    test_fraction: float = 0.2  # used when test_path is empty
    val_fraction: float = 0.0  # held out of training for validation loss
    seed: int = 0
    max_per_class: int = 0  # cap on training texts per class (0 = all)
    max_test: int = 0  # cap on test texts (0 = all), stratified
    max_unlabelled: int = 0
    clean_html: bool = True  # "<br />" -> newline, other tags dropped
    # What the data set is called, for eval.bands_dataset; "" -> named at launch from
    # data.path (data/imdb/train.jsonl.gz -> imdb, reviews.csv -> reviews; hf: the name).
    name: str = ""


@dataclass
class ModelSpec:
    kind: str = "ar"  # ar | mdlm | mlm-pll | classifier
    # "scratch" (config below + a tokenizer trained on the training text), a Hugging
    # Face model name (host with internet) or a path to a checkpoint folder.
    init: str = "scratch"
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    max_len: int = 128  # tokens per text, longer texts are truncated
    vocab_size: int = 2000  # scratch tokenizer size
    dropout: float = 0.0
    attention: str = "auto"  # auto | sdpa | flash (flash-attn when installed)


@dataclass
class TrainSpec:
    steps: int = 100
    epochs: float = 0.0  # > 0 overrides steps
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    compile: bool = False
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end)
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    # torch intra-op threads when the job runs on CPU (0 = torch's default, all cores).
    # 1 by default: the jobs of a run share the machine, and oversubscribed OpenMP
    # threads spin: a tiny model's 24 ms step took 650 ms with 2 threads on a busy 2-core box.
    cpu_threads: int = 1


@dataclass
class PretrainSpec(TrainSpec):
    enabled: bool = False
    # Also pretrain on the training split's texts (never the test texts): more
    # in-domain text for the backbone, as in the 88.9% IMDB anchor (unsup + train).
    include_train: bool = True
    # Another run's pretrain job to start from instead of one of this run's own (a study's
    # members with the same pretraining share one): that run's id, on the same host workdir.
    from_run: str = ""


@dataclass
class AdaptiveSpec:
    """``score.mdlm_draws: adaptive``: draws added in rounds to the texts whose class
    decision is not settled yet (docs/ADAPTIVE_DRAWS.md)."""

    round: int = 4  # draws per round, and so the least a text gets (an SE needs >= 2)
    max: int = 64  # the most draws a text gets
    z: float = 2.0  # a text is settled once |paired margin| > z * its paired SE


@dataclass
class ScoreSpec:
    batch_size: int = 32
    # K draws per text for the MDLM NELBO estimate, or "adaptive" (see AdaptiveSpec)
    mdlm_draws: Union[int, str] = 8
    mdlm_stratify: str = "k"  # k (number of masked tokens) | t
    seed: int = 1234
    adaptive: AdaptiveSpec = field(default_factory=AdaptiveSpec)

    @property
    def is_adaptive(self) -> bool:
        return self.mdlm_draws == "adaptive"


@dataclass
class EvalSpec:
    prior: str = "uniform"  # uniform | train (class frequencies of the training set)
    bands: str = "auto"  # auto | poc | mdlm: which verdict bands head the report
    # The data set the bands were written for (both built-in sets are IMDB's): applied to
    # it only; any other data is judged against the yardsticks. "*": every data set.
    bands_dataset: str = "imdb"
    yardsticks: bool = True  # naive Bayes + TF-IDF logistic regression on the run's own split
    bootstrap: int = 1000  # resamples of the draws in an MDLM run's accuracy interval; 0: no intervals
    min_accuracy: float = 0.0  # smoke threshold


@dataclass
class Experiment:
    name: str = ""
    host: str = "local"
    env: str = ""  # configs/envs/<env>.yaml used by bootstrap
    description: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    score: ScoreSpec = field(default_factory=ScoreSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)

    def check(self, where: str) -> None:
        if self.model.kind not in KINDS:
            raise SpecError(f"{where}: key 'model.kind': expected one of {', '.join(KINDS)}, got {self.model.kind!r}")
        if self.data.source not in ("file", "hf"):
            raise SpecError(f"{where}: key 'data.source': expected 'file' or 'hf', got {self.data.source!r}")
        if not self.data.path:
            raise SpecError(f"{where}: key 'data.path': required (a JSONL/CSV file or a dataset name)")
        if self.score.mdlm_stratify not in ("k", "t"):
            raise SpecError(f"{where}: key 'score.mdlm_stratify': expected 'k' or 't'")
        if isinstance(self.score.mdlm_draws, str):
            if self.score.mdlm_draws != "adaptive":
                raise SpecError(
                    f"{where}: key 'score.mdlm_draws': expected an integer >= 1 or 'adaptive', "
                    f"got {self.score.mdlm_draws!r}"
                )
            if not scored_with_draws(self.model.kind):
                drawn = " or ".join(k for k in KINDS if scored_with_draws(k))
                raise SpecError(
                    f"{where}: key 'score.mdlm_draws': 'adaptive' needs model.kind {drawn} (the only kind "
                    f"that scores with random draws), got model.kind {self.model.kind!r}; give an integer "
                    "or leave it out"
                )
        if self.eval.prior not in ("uniform", "train"):
            raise SpecError(f"{where}: key 'eval.prior': expected 'uniform' or 'train'")
        if self.model.n_embd % max(self.model.n_head, 1):
            raise SpecError(f"{where}: key 'model.n_embd': must be divisible by model.n_head")
        if self.pretrain.enabled and not self.data.unlabelled_path and self.data.source == "file":
            raise SpecError(f"{where}: key 'data.unlabelled_path': required when pretrain.enabled is true")
        if self.pretrain.from_run and not _RUN_ID.match(self.pretrain.from_run):
            raise SpecError(
                f"{where}: key 'pretrain.from_run': expected a run id (letters, digits, _ and -), "
                f"got {self.pretrain.from_run!r}"
            )
        self._check_ranges(where)

    def _check_ranges(self, where: str) -> None:
        """Numbers a job would otherwise choke on (or silently misread) after launch."""

        def need(key: str, ok: bool, expected: str) -> None:
            if not ok:
                section, name = key.split(".")
                value = getattr(getattr(self, section), name)
                raise SpecError(f"{where}: key '{key}': expected {expected}, got {value!r}")

        m, d, sc, ev = self.model, self.data, self.score, self.eval
        for key in ("n_layer", "n_embd", "n_head"):
            need(f"model.{key}", getattr(m, key) >= 1, "an integer >= 1")
        need("model.max_len", m.max_len >= 4, "an integer >= 4 (tokens per text)")
        need("model.vocab_size", m.vocab_size >= 64, "an integer >= 64")
        need("model.dropout", 0.0 <= m.dropout < 1.0, "a number in [0, 1)")
        need("model.attention", m.attention in ("auto", "sdpa", "flash"), "auto, sdpa or flash")
        if not d.test_path and not (d.source == "hf" and d.hf_test_split):
            need("data.test_fraction", 0.0 < d.test_fraction < 1.0, "a number in (0, 1) when data.test_path is empty")
        need("data.val_fraction", 0.0 <= d.val_fraction < 1.0, "a number in [0, 1)")
        for key in ("max_per_class", "max_test", "max_unlabelled"):
            need(f"data.{key}", getattr(d, key) >= 0, "an integer >= 0 (0 = no cap)")
        for section in ("train", "pretrain"):
            t = getattr(self, section)
            if section == "pretrain" and not self.pretrain.enabled:
                continue
            need(f"{section}.epochs", t.epochs >= 0, "a number >= 0 (0 = use steps)")
            need(f"{section}.steps", t.steps >= 1 or t.epochs > 0, "an integer >= 1 (or set epochs)")
            need(f"{section}.batch_size", t.batch_size >= 1, "an integer >= 1")
            need(f"{section}.grad_accum", t.grad_accum >= 1, "an integer >= 1")
            need(f"{section}.lr", t.lr > 0, "a number > 0")
            need(f"{section}.warmup_steps", t.warmup_steps >= 0, "an integer >= 0")
            need(f"{section}.min_lr_ratio", 0.0 <= t.min_lr_ratio <= 1.0, "a number in [0, 1]")
            need(f"{section}.grad_clip", t.grad_clip >= 0, "a number >= 0 (0 = no clipping)")
            need(f"{section}.checkpoint_every", t.checkpoint_every >= 0, "an integer >= 0")
            need(f"{section}.log_every", t.log_every >= 1, "an integer >= 1")
            need(f"{section}.cpu_threads", t.cpu_threads >= 1, "an integer >= 1")
            need(f"{section}.device", t.device in ("auto", "cpu", "cuda"), "auto, cpu or cuda")
            need(f"{section}.dtype", t.dtype in ("auto", "fp32", "bf16"), "auto, fp32 or bf16")
        need("score.batch_size", sc.batch_size >= 1, "an integer >= 1")
        if not sc.is_adaptive:
            need("score.mdlm_draws", sc.mdlm_draws >= 1, "an integer >= 1 or 'adaptive'")
        ad = sc.adaptive
        for key, ok, expected in (
            ("round", ad.round >= 2, "an integer >= 2 (a paired SE needs two draws)"),
            ("max", ad.max >= ad.round, f"an integer >= score.adaptive.round ({ad.round})"),
            ("z", ad.z > 0, "a number > 0"),
        ):
            if not ok:
                raise SpecError(f"{where}: key 'score.adaptive.{key}': expected {expected}, got {getattr(ad, key)!r}")
        need("eval.bootstrap", ev.bootstrap >= 0, "an integer >= 0")
        need("eval.min_accuracy", 0.0 <= ev.min_accuracy <= 1.0, "a number in [0, 1]")


# A run id as the controller allows it (orchestrator/config/project.py NAME_RE).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")

_KINDS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(tp))
    if origin is Union:
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (list, List):
        (item,) = typing.get_args(tp) or (None,)
        return f"a list of {_KINDS[item]}" if item in _KINDS else "a list"
    if origin in (dict, Dict):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, key: str, where: str) -> Any:
    bad = SpecError(f"{where}: key '{key}': expected {_describe(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return build(tp, value, where, prefix=key + ".")
    origin = typing.get_origin(tp)
    if origin is Union:  # e.g. score.mdlm_draws: an integer or a word; check() says which words
        for option in typing.get_args(tp):
            try:
                return _coerce(option, value, key, where)
            except SpecError:
                continue
        raise bad
    if origin is typing.Literal:  # a choice among fixed values, e.g. Literal["conda", "venv"]
        if isinstance(value, bool) or value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise bad
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(vt, v, f"{key}.{k}", where) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        # Labels such as 0/1 arrive from YAML as ints: a string field takes any scalar.
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    raise bad


def build(cls: Any, raw: Dict[str, Any], where: str, prefix: str = "") -> Any:
    """Turn a mapping into dataclass ``cls``; unknown keys and wrong types are errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: key '{prefix.rstrip('.') or '<top>'}': expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise SpecError(f"{where}: unknown key '{prefix}{key}' (known keys here: {', '.join(names)})")
        kwargs[key] = _coerce(hints[key], value, prefix + key, where)
    return cls(**kwargs)


def pretrain_kind_name(kind: str) -> str:
    """The model kind a pretrain job trains for an experiment of KIND.  The classifier has
    no LM loss: its backbone is pretrained as a causal LM ("ar"), and
    AutoModelForSequenceClassification puts a fresh head on it."""
    return "ar" if discriminative(kind) else kind


def load_experiment(raw: Dict[str, Any], where: str) -> Experiment:
    exp = build(Experiment, raw, where)
    exp.check(where)
    return exp


def to_dict(obj: Any) -> Dict[str, Any]:
    return dataclasses.asdict(obj)


def set_dotted(raw: Dict[str, Any], key: str, value: Any) -> None:
    """Apply one ``--set a.b=value`` override to a raw (not yet validated) mapping."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SpecError(f"--set {key}: '{part}' is not a section")
        node = nxt
    node[parts[-1]] = value
