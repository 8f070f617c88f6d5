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


def _compile_here() -> bool:
    import os

    import torch

    return torch.cuda.is_available() or os.environ.get("ORCH_TEST_COMPILE") == "1"


# train.compile is for GPU hosts.  On a CPU, inductor compiles C++ for many minutes (over
# ten for one kind on a busy 2-core CI machine, past the per-test limit), so there the test
# runs only when asked: ORCH_TEST_COMPILE=1 python3 -m pytest tests/remote/test_compile.py
# (bench/bench_remote.py --compile both, in bench/gpu_session.sh, also compiles on a lent GPU).
@pytest.mark.skipif(
    "not _compile_here()", reason="torch.compile on a CPU takes many minutes: set ORCH_TEST_COMPILE=1 to run it"
)
@pytest.mark.parametrize("kind", ["ar", "mdlm"])
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
