"""The `slurm:` host block: hostile values refused with one message; options become argv items."""

import pytest

from orchestrator import backends
from orchestrator.config.hosts import resolve_host
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs.plan import PlannedJob, job_command, launch_plan


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "configs" / "hosts").mkdir(parents=True)
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("ORCH_SSH_CONFIG", str(tmp_path / "ssh_config"))
    return Project(tmp_path)


def write(project, body: str):
    (project.configs / "hosts" / "cluster.yaml").write_text("hostname: login.example.org\nscheduler: slurm\n" + body)
    return resolve_host(project, "cluster")


def test_slurm_block_becomes_sbatch_argv_items(project):
    host = write(
        project,
        "slurm:\n  partition: gpu\n  account: def-v\n  time: '02:00:00'\n  gres: 'gpu:a100:1'\n"
        "  cpus_per_task: 8\n  mem: 32G\n  extra_args: ['--mail-type=END']\n"
        "  modules: [cuda/12.4, python/3.11]\n",
    )
    backend = backends.for_host(host)
    assert backend.name == "slurm"
    assert host.slurm.sbatch_args() == [
        "--partition=gpu",
        "--account=def-v",
        "--time=02:00:00",
        "--gres=gpu:a100:1",
        "--mem=32G",
        "--cpus-per-task=8",
        "--mail-type=END",
    ]
    plan = launch_plan(
        "r1",
        "/env/py",
        "/w/runs/r1",
        "/w/code/h",
        [
            PlannedJob(name="pretrain", role="pretrain"),
            PlannedJob(name="neg", role="class", label="0", requires=["pretrain"]),
        ],
        backend,
    )
    assert plan["backend"] == "slurm"
    assert plan["options"]["modules"] == ["cuda/12.4", "python/3.11"]
    assert plan["options"]["sbatch"][0] == "--partition=gpu"
    neg = plan["jobs"][1]["command"]
    # exec: Slurm's warning signal (B:USR1) reaches the wrapper; Slurm sets CUDA_VISIBLE_DEVICES.
    assert neg.startswith("cd /w/code/h && exec env PYTHONPATH=/w/code/h PYTHONUNBUFFERED=1 /env/py -m remote.wrapper")
    assert "CUDA_VISIBLE_DEVICES" not in neg
    assert "--requires pretrain --requeueable --max-requeues 5 --" in neg


def test_tmux_command_is_unchanged_by_the_seam():
    job = PlannedJob(name="neg", role="class", gpu="1")
    assert job_command("py", "/w/r", "/w/c", job, backends.get("tmux")) == (
        "cd /w/c && env PYTHONPATH=/w/c PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=1 ORCH_GPU_QUEUE=/gpu-queue "
        "py -m remote.wrapper --job-dir /w/r/jobs/neg -- py -m remote.run_job --run-dir /w/r --job neg"
    )


@pytest.mark.parametrize(
    "body, key",
    [
        ("  partition: 'gpu --wrap=rm'\n", "slurm.partition"),
        ("  partition: '-x'\n", "slurm.partition"),
        ('  account: "a\\nb"\n', "slurm.account"),
        ("  time: 'two hours'\n", "slurm.time"),
        ("  time: '1:00:00; reboot'\n", "slurm.time"),
        ("  gres: 'gpu:1 --uid=0'\n", "slurm.gres"),
        ("  mem: '32 G'\n", "slurm.mem"),
        ("  qos: '$(id)'\n", "slurm.qos"),
        ("  constraint: 'a100`id`'\n", "slurm.constraint"),
        ("  cpus_per_task: -1\n", "slurm.cpus_per_task"),
        ("  extra_args: ['--output=/etc/passwd']\n", "slurm.extra_args[0]"),
        ("  extra_args: ['--dep=afterok:1']\n", "slurm.extra_args[0]"),
        ("  extra_args: ['-o/tmp/x']\n", "slurm.extra_args[0]"),
        ("  extra_args: ['script.sh']\n", "slurm.extra_args[0]"),
        ('  extra_args: ["--comment=a\\nb"]\n', "slurm.extra_args[0]"),
        ("  modules: ['cuda; rm -rf ~']\n", "slurm.modules[0]"),
        ("  modules: ['-f']\n", "slurm.modules[0]"),
        ("  gres: 'gpu:1'\n  gpus_per_job: 1\n", "slurm.gpus_per_job"),
        ("  partiton: gpu\n", "slurm.partiton"),
    ],
)
def test_hostile_slurm_values_refused_with_the_key(project, body, key):
    with pytest.raises(OrchError) as info:
        write(project, "slurm:\n" + body)
    assert key in info.value.message and "cluster.yaml" in info.value.message
    assert info.value.code == ExitCode.CONFIG


def test_unknown_scheduler_names_both():
    with pytest.raises(OrchError, match="unknown scheduler"):
        backends.get("pbs")


def test_sinfo_parsed_and_slurm_problems_named():
    from orchestrator.backends.slurm import slurm_problems
    from orchestrator.backends.slurm_facts import PARTITIONS, parse_sinfo
    from orchestrator.provision.probe import HostFacts

    # The probe's sinfo line ends in the partition's DefaultTime; a project's older probe.sh has none.
    parts = parse_sinfo("gpu*|up|2-00:00:00|4|gpu:a100:4(S:0-1)|1:00:00\ncpu|up|7-00:00:00|10|(null)\nnoise\n")
    assert parts[0] == {
        "partition": "gpu",
        "default": "yes",
        "available": "up",
        "time_limit": "2-00:00:00",
        "nodes": "4",
        "gres": "gpu:a100:4(S:0-1)",
        "default_time": "1:00:00",
    }
    assert parts[1]["default_time"] == ""
    facts = HostFacts(workdir="/w", cluster={PARTITIONS: parts})
    assert slurm_problems(facts, "gpu", "gpu:1") == []
    assert "'big' is not a partition here (sinfo lists: cpu, gpu)" in slurm_problems(facts, "big")[0].message
    no_gpu = HostFacts(workdir="/w", cluster={PARTITIONS: parts[1:]})
    assert "no partition here has GPU gres" in slurm_problems(no_gpu, "", "gpu:1")[0].message
    assert "no `sinfo`" in slurm_problems(HostFacts(workdir="/w"))[0].message
    assert HostFacts.from_dict(facts.to_dict()).cluster[PARTITIONS] == parts


def test_slurm_times_read_as_slurm_does():
    from orchestrator.config.slurm import seconds

    assert [seconds(t) for t in ("1", "30:00", "2:00:00", "1-0", "1-02:03", "1-02:03:04")] == [
        60,
        1800,
        7200,
        86400,
        93780,
        93784,
    ]
    assert seconds("infinite") is None and seconds("UNLIMITED") is None and seconds("") is None


def test_warn_before_must_leave_time_to_work(project):
    # time: "1" is one minute: the default warning (120 s before it) came at once, every attempt.
    with pytest.raises(OrchError) as info:
        write(project, "slurm:\n  time: '1'\n")
    assert info.value.code == ExitCode.CONFIG and "slurm.warn_before" in info.value.message
    assert "'1' (60 s)" in info.value.message and "a bare number is minutes" in info.value.hint
    # Legal but tight: said at launch and by `hosts check`, not refused.
    host = write(project, "slurm:\n  time: '5'\n  warn_before: 60\n")
    (said,) = backends.for_host(host).warnings()
    assert "leaves each attempt 4 min before Slurm's warning" in said
    assert backends.for_host(write(project, "slurm:\n  time: '02:00:00'\n")).warnings() == []


@pytest.mark.parametrize("mem", ["32G", "32GB", "32gb", "1024M", "500000K", "1T", "32000"])
def test_mem_takes_the_units_sbatch_takes(project, mem):
    assert write(project, f"slurm:\n  mem: {mem}\n").slurm.sbatch_args() == [f"--mem={mem}"]


def test_time_over_the_partition_limit_is_an_error_a_tight_one_a_warning():
    from orchestrator.backends.slurm import SlurmBackend, slurm_problems
    from orchestrator.backends.slurm_facts import PARTITIONS, parse_sinfo
    from orchestrator.config.slurm import SlurmOptions
    from orchestrator.provision.probe import HostFacts

    parts = parse_sinfo("gpu*|up|2:00:00|4|gpu:a100:4\ngpu*|up|2:00:00|2|gpu:h100:8\nlong|up|infinite|2|(null)\n")
    facts = HostFacts(workdir="/w", cluster={PARTITIONS: parts})
    (over,) = slurm_problems(facts, "", "", "03:00:00")  # the default partition; listed twice, said once
    assert over.level == "error" and "over the time limit of partition 'gpu', 2:00:00 (2 h)" in over.message
    assert "PartitionTimeLimit" in over.message and "2:00:00 or less" in over.hint
    assert slurm_problems(facts, "long", "", "30-0") == [] and slurm_problems(facts, "gpu", "", "2:00:00") == []
    # several partitions: Slurm runs the job in one it fits, so the short one is a warning
    (short,) = slurm_problems(facts, "gpu,long", "", "03:00:00")
    assert short.level == "warning" and "Slurm can only run its jobs in long" in short.message
    tight = SlurmBackend(SlurmOptions(partition="gpu", time="3", warn_before=60)).host_problems(facts)
    assert [p.level for p in tight] == ["warning"]


def test_warn_before_is_checked_against_the_partitions_default_time_when_slurm_time_is_unset():
    """slurm.time unset: a job gets its partition's DefaultTime (its MaxTime when it has none),
    and a warn_before at or over that is the same mistake check() refuses in slurm.time."""
    from orchestrator.backends.slurm import SlurmBackend
    from orchestrator.backends.slurm_facts import PARTITIONS, parse_sinfo
    from orchestrator.config.slurm import SlurmOptions
    from orchestrator.provision.probe import HostFacts

    facts = HostFacts(
        workdir="/w",
        cluster={
            PARTITIONS: parse_sinfo(
                "short*|up|infinite|4|gpu:a100:4|1:00\nshort*|up|infinite|2|gpu:h100:8|1:00\n"
                "capped|up|2:00|2|(null)|n/a\ntight|up|infinite|2|(null)|8:00\nlong|up|infinite|2|(null)|n/a\n"
            )
        },
    )

    def found(**opts):
        return [(p.level, p.message, p.hint) for p in SlurmBackend(SlurmOptions(**opts)).host_problems(facts)]

    ((level, message, hint),) = found()  # the default partition, listed twice: said once
    assert level == "error" and message.startswith("slurm.warn_before 120 s is not less than the default time limit")
    assert "(DefaultTime) of partition 'short', 1:00 (60 s), which its jobs get with slurm.time unset" in message
    assert "set slurm.time well over 120 s" in hint
    ((level, message, _),) = found(partition="capped")
    assert level == "error" and "time limit (MaxTime; it sets no DefaultTime) of partition 'capped', 2:00" in message
    assert found(partition="long") == [] and found(partition="short", time="1:00:00") == []
    ((level, message, _),) = found(partition="short", warn_before=30)  # legal, and tight: as a slurm.time is
    assert level == "warning" and "leaves each attempt 30 s before Slurm's warning" in message
    ((level, message, _),) = found(partition="tight")
    assert level == "warning" and "leaves each attempt 6 min before" in message
    # Several partitions: Slurm may run a job in one it suits, so a short one is a warning.
    ((level, message, _),) = found(partition="short,long")
    assert level == "warning" and "(jobs Slurm runs in long are not affected)" in message


HUGE = "9" * 5000  # int() of more than 4300 digits raises ValueError


def test_huge_numbers_in_sinfo_are_skipped_never_an_exception():
    """A host's sinfo with a 5000-digit gres count, %l or %L crashed `hosts check` and
    `bootstrap --dry-run` (ValueError: Exceeds the limit (4300 digits) for integer string
    conversion): such a number is no count, no time limit."""
    from orchestrator.backends.slurm import default_limits, slurm_problems
    from orchestrator.backends.slurm_facts import PARTITIONS, fact_rows, gpu_types, gres_gpu_types, parse_sinfo
    from orchestrator.config.slurm import seconds
    from orchestrator.provision.probe import HostFacts

    assert seconds(HUGE) is None and seconds(f"1-{HUGE}") is None and seconds(f"{HUGE}-00:00:00") is None
    assert seconds("9999999999") is None and seconds("999999999") == 59999999940  # 9 digits: still a time
    assert gres_gpu_types(f"gpu:a100:{HUGE}") == [] and gres_gpu_types(f"gpu:{HUGE},gpu:h100:2") == ["h100"]
    parts = parse_sinfo(f"gpu*|up|{HUGE}|1|gpu:a100:{HUGE}|{HUGE}\nh|up|1:00:00|1|gpu:h100:1|{HUGE}\n")
    cluster = {PARTITIONS: parts}
    (row,) = fact_rows(cluster)
    assert "(default 9" not in row[1]  # an unreadable DefaultTime is not shown as one
    assert gpu_types(cluster, "") == ["h100"]
    facts = HostFacts(workdir="/w", cluster=cluster)
    assert default_limits(facts, "gpu") == {"gpu": None}  # read as no limit
    assert slurm_problems(facts, "gpu", "", "02:00:00") == []
    assert default_limits(facts, "h")["h"][1] == 3600


def test_a_huge_slurm_time_is_a_config_error_of_a_few_lines(project):
    with pytest.raises(OrchError) as info:
        write(project, f"slurm:\n  time: '{HUGE}'\n")
    assert info.value.code == ExitCode.CONFIG
    assert "cluster.yaml: key 'slurm.time': a number in it has more than 9 digits: '999" in info.value.message
    assert "(5000 characters)" in info.value.message and len(info.value.message) < 300
    with pytest.raises(OrchError, match="more than 9 digits"):
        write(project, "slurm:\n  time: '1-1234567890'\n")
    assert write(project, "slurm:\n  time: '365-00:00:00'\n").slurm.time == "365-00:00:00"


def test_the_host_side_reads_only_ascii_digits_as_numbers():
    """str.isdigit() takes '²', which int() and float() refuse with a ValueError."""
    from remote.backends.slurm import requeues, when

    assert when("²") is None and when(HUGE) is None and when("1764150020") == 1764150020.0
    assert requeues({"SLURM_RESTART_COUNT": "²", "ORCH_EARLIER_REQUEUES": "2"}) == 2
