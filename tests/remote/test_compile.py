"""train.compile=true runs the jobs through torch.compile (remote.train.compiled) and
gives the eager run's scores.  Compiling is slow on a CPU (tens of seconds per graph),
so this runs one short class job per path."""

import pytest
import timing
from runkit import class_jobs, experiment, read_jsonl, run_job_process, write_run

# Four jobs, two of them compiling: minutes on an idle 2-core machine, many more on a busy one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(timing.scaled(600))]


def _scores(tmp_path, name, **overrides):
    exp = experiment(train__steps=8, train__log_every=4, data__max_test=16, **overrides)
    run_dir = write_run(tmp_path / name, exp, class_jobs()[:1])
    proc = run_job_process(run_dir, "neg", timeout=timing.scaled(600))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {r["id"]: r for r in read_jsonl(run_dir / "jobs" / "neg" / "scores.jsonl")}, proc


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# The compiled path (remote.train.compiled) is one for every kind; on a CPU, where inductor
# compiles C++ for minutes, one kind checks it; on a GPU machine both run.
@pytest.mark.parametrize(
    "kind",
    [
        "ar",
        pytest.param(
            "mdlm", marks=pytest.mark.skipif("not _cuda()", reason="compiling a second kind on a CPU costs minutes")
        ),
    ],
)
def test_compiled_job_gives_the_eager_scores(tmp_path, kind):
    eager, _ = _scores(tmp_path, "eager", model__kind=kind)
    compiled, proc = _scores(tmp_path, "compiled", model__kind=kind, train__compile=True)
    assert "torch.compile on" in proc.stdout + proc.stderr
    assert set(compiled) == set(eager) and len(eager) == 16
    for text_id, row in eager.items():
        other = compiled[text_id]
        assert other["tokens"] == row["tokens"]
        # Same maths, fused kernels: equal up to float rounding after 8 training steps.
        assert other["nll"] == pytest.approx(row["nll"], rel=1e-3, abs=1e-3), text_id
