"""The bootstrap step runner, without a host: following a detached step through a fake
backend (what TmuxSteps reads from tmux and the step's files), and the poll parser."""

import pytest
from hostfixtures import make_facts

from orchestrator.backends import tmux_steps
from orchestrator.config import envspec
from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import plan as bp
from orchestrator.provision import steps
from orchestrator.provision.progress import Progress


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def step_started(self, step, reattach=""):
        self.events.append(("started", step.name, reattach))

    def step_detached(self, step, where, log):
        self.events.append(("detached", where, log))

    def step_output(self, lines, skipped=0):
        self.events.append(("output", list(lines), skipped))

    def step_done(self, step, seconds):
        self.events.append(("done", step.name, seconds))


class FakeLock:
    POLL_SNIPPET = ""

    def poll_args(self):
        return ["LOCK", "TOKEN"]

    def lost_error(self):
        return OrchError("lock lost", ExitCode.REMOTE)


class FakeBackend:
    """Answers polls from a script of (info, chunk) pairs, as TmuxSteps.poll would."""

    def __init__(self, polls):
        self.polls = list(polls)
        self.launched = []
        self.offsets = []

    def describe(self, step, socket=False):
        return f"fake job {step.name}" + (" (fake socket)" if socket else "")

    def stop_hint(self, step):
        return f"fake-cancel {step.name}"

    def path_file(self, step):
        return f"/w/bootstrap/logs/{step.name}.path"

    def launch(self, step, argv, host):
        self.launched.append(argv)

    def poll(self, step, offset, lock):
        assert lock.poll_args() == ["LOCK", "TOKEN"]  # every poll refreshes the bootstrap lock
        self.offsets.append(offset)
        return self.polls.pop(0)

    def log_tail(self, step):
        return "the whole log"


def _runner(polls, state="todo"):
    facts = make_facts()
    plan = bp.build_plan(facts, envspec.parse({"manager": "venv"}, "v"), host="h")
    step = bp.Step(
        "packages", "pip einops", state=state, argv=["pip", "install", "einops"], detached=True, fingerprint="f1"
    )
    progress = Recorder()
    backend = FakeBackend(polls)
    return steps.Runner(object(), plan, "h", progress, lock=FakeLock(), detached=backend), step, progress, backend


def _info(chunk, alive=True, result=None, **extra):
    info = {"now": 100.0, "started": {"started": 90.0}, "alive": alive, "result": result, "chunk": len(chunk)}
    info.update(extra)
    return info, chunk


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(steps, "POLL_S", 0)


def test_a_detached_step_is_launched_and_followed_to_its_result():
    lines = "".join(f"line {i}\n" for i in range(45))
    chunks = ["Collecting einops\nDownlo", "ading einops\n\n", lines]
    runner, step, progress, backend = _runner(
        [
            *(_info(c) for c in chunks),
            _info("no newline at the end", alive=False, result={"rc": 0, "started": 90, "ended": 130}),
        ]
    )
    rc, log = runner.run_step(step)
    assert (rc, log) == (0, "the whole log")
    argv = backend.launched[0]
    assert argv[:2] == ["bash", runner.plan.layout.script("run_step.sh")]
    assert argv[argv.index("--path-file") + 1] == "/w/bootstrap/logs/packages.path"
    assert argv[-3:] == ["pip", "install", "einops"]
    # each poll asks for the log from where the last one stopped
    assert backend.offsets == [0, len(chunks[0]), len(chunks[0] + chunks[1]), len("".join(chunks))]
    assert progress.events[0] == ("started", "packages", "")
    assert progress.events[1] == ("detached", "fake job packages (fake socket)", runner.plan.layout.log("packages"))
    outputs = [e for e in progress.events if e[0] == "output"]
    # a line split across polls is shown once, whole; blank lines are dropped
    assert outputs[0] == ("output", ["Collecting einops"], 0)
    assert outputs[1] == ("output", ["Downloading einops"], 0)
    # a burst is cut to its last lines, saying how many were left out
    assert outputs[2] == ("output", [f"line {i}" for i in range(5, 45)], 5)
    assert outputs[3] == ("output", ["no newline at the end"], 0)
    assert progress.events[-1] == ("done", "packages", 40)


def test_a_running_step_is_reattached_not_launched_again():
    runner, step, progress, backend = _runner([_info("", result={"rc": 3})], state="running")
    assert runner.run_step(step) == (3, "the whole log")
    assert backend.launched == []
    assert progress.events[0] == ("started", "packages", "fake job packages")
    assert not any(e[0] == "done" for e in progress.events)


def test_a_step_whose_job_is_gone_without_a_result_is_an_error_with_a_hint():
    runner, step, _, _ = _runner([_info("", alive=False)])
    with pytest.raises(OrchError) as err:
        runner.run_step(step)
    assert err.value.code == ExitCode.REMOTE
    assert "its fake job packages is gone without a result" in err.value.message
    assert "re-run `orch bootstrap h`" in err.value.hint


def test_a_step_past_its_timeout_says_how_to_reattach_or_stop_it():
    runner, step, _, _ = _runner([_info("", now=100.0 + 700)])
    with pytest.raises(OrchError) as err:
        runner.run_step(step)
    assert "step packages is still running after 11m50s (timeout 10m00s)" in err.value.message
    assert "`orch bootstrap h` reattaches" in err.value.hint and "`fake-cancel packages`" in err.value.hint


def test_a_lost_lock_stops_following():
    runner, step, _, _ = _runner([_info("", lock="lost")])
    with pytest.raises(OrchError) as err:
        runner.run_step(step)
    assert err.value.message == "lock lost"


def test_parse_poll_reads_the_markers_and_the_log_chunk():
    text = (
        '@@now 1700000000\n@@started {"started": 1699999990}\n@@alive 1\n@@result \n@@lock ok\n'
        "@@chunk 12\nhello\n@@chunk x"
    )
    info, chunk = tmux_steps.parse_poll(text)
    assert info == {
        "now": 1700000000.0,
        "started": {"started": 1699999990},
        "alive": True,
        "result": None,
        "lock": "ok",
        "chunk": 12,
    }
    assert chunk == "hello\n@@chunk x"  # the log's own text is never parsed as markers


@pytest.mark.parametrize(
    "text, info",
    [
        ("@@now abc\n@@chunk zz\nlog", {"chunk": 0}),
        ("@@now inf\n@@now nan\n@@chunk ²\nlog", {"chunk": 0}),
        ("@@now 1e400\n@@chunk " + "9" * 5000 + "\nlog", {"chunk": 0}),
        (
            "@@started " + "[" * 100_000 + "\n@@result [1]\n@@chunk 3\nlog",
            {"started": None, "result": None, "chunk": 3},
        ),
    ],
)
def test_a_poll_of_the_wrong_form_leaves_out_what_it_cannot_mean(text, info):
    """The host wrote the poll's answer: what is not a number where one belongs is not said."""
    assert tmux_steps.parse_poll(text) == (info, "log")


@pytest.mark.parametrize(
    "result, started, rc",
    [
        ({"rc": "x", "started": "a", "ended": None}, {"started": "b"}, 1),
        ({"rc": 1e300}, {"started": 10**400}, 1),
        ({"rc": None}, None, 1),
        ({"rc": True}, {"started": [1]}, 1),
        ({"rc": 0, "started": 1e300, "ended": "z"}, {"started": float("inf")}, 0),
    ],
)
def test_a_result_of_the_wrong_form_ends_the_step_failed_not_in_a_traceback(result, started, rc):
    info = {"now": 100.0, "started": started, "alive": False, "result": result, "chunk": 0}
    runner, step, progress, _ = _runner([(info, "x" * 200_000)])
    assert runner.run_step(step) == (rc, "the whole log")
    if rc == 0:
        assert progress.events[-1] == ("done", "packages", 0.0)
