"""Which GPUs each torch CUDA build has kernels for, and the selection that follows from it:
recent builds (cu128+, and cu130) dropped Maxwell, Pascal and, in some releases, Volta; a host
with such a GPU gets an older build that still has its kernels, within what the driver runs,
or a refusal naming the GPU."""

import pytest
from hostfixtures import FIXTURES, make_facts

from orchestrator.config import envspec
from orchestrator.provision import gpu
from orchestrator.provision import plan as bp
from orchestrator.provision.torch_select import (
    BUILD_ARCHS,
    TORCH_CUDA_VARIANTS,
    build_archs,
    runs_on,
    select_torch,
)

V100 = "Tesla V100-SXM2-32GB"
P100 = "Tesla P100-PCIE-16GB"


def test_every_published_build_has_a_kernel_list():
    for minor, variants in TORCH_CUDA_VARIANTS.items():
        for var in variants:
            assert var in BUILD_ARCHS and build_archs(minor, var), (minor, var)


@pytest.mark.parametrize(
    "version, variant, has_sm70, has_sm60, has_sm100",
    [
        ("2.6", "cu124", True, True, False),
        ("2.11", "cu126", True, True, False),  # get_arch_list() of 2.11.0+cu126: sm_50 ... sm_90
        ("2.7", "cu128", False, False, True),  # pytorch #147607 dropped sm_50-70 from cu128
        ("2.8", "cu128", False, False, True),  # release notes: sm50-sm70 dropped (the conservative reading)
        ("2.8", "cu129", False, False, True),
        ("2.9", "cu128", True, False, True),  # RELEASE.md, release 2.9 and 2.10: Volta(7.0) in 12.8.1
        ("2.10.0", "cu128", True, False, True),  # get_arch_list() of 2.10.0+cu128 starts at sm_70
        ("2.11", "cu128", False, False, True),  # ... of 2.11.0+cu128 at sm_75
        ("2.11", "cu130", False, False, True),
        ("2.13", "cu130", False, False, True),  # newer than the table: like its newest entry
    ],
)
def test_the_kernel_table(version, variant, has_sm70, has_sm60, has_sm100):
    archs = build_archs(version, variant)
    assert (runs_on(archs, (7, 0)), runs_on(archs, (6, 0)), runs_on(archs, (10, 0))) == (has_sm70, has_sm60, has_sm100)


def test_binary_compatibility_is_within_a_major_and_upwards_only():
    archs = build_archs("2.11", "cu126")  # sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90
    assert runs_on(archs, (6, 1)) and runs_on(archs, (8, 9)) and runs_on(archs, (7, 2))
    assert not runs_on(archs, (10, 0)) and not runs_on(archs, (3, 7))
    assert runs_on(build_archs("2.11", "cu130"), (10, 3)) and runs_on(build_archs("2.11", "cu130"), (12, 1))
    assert not runs_on(((7, 5),), (7, 0))


def test_the_real_h200_keeps_its_build():
    """The fixture host (one H200, driver 580 = CUDA 13.0) ran torch 2.11.0+cu130: still chosen."""
    report = gpu.build_report(
        smi_path="/usr/bin/nvidia-smi",
        query_rc=0,
        query_out=(FIXTURES / "nvidia-smi-query.csv").read_text(),
        xml_rc=0,
        xml_out=(FIXTURES / "nvidia-smi-q-x.xml").read_text(),
    )
    c = select_torch(
        driver_cuda=report.cuda_version,
        compute_caps=report.compute_caps(),
        gpu_names=[g.name for g in report.gpus],
    )
    assert (c.version, c.variant, c.blocked) == ("2.11", "cu130", "")
    assert c.reason == "highest CUDA build of torch <= the driver's CUDA 13.0" and c.notes == []
    assert "torch 2.11.0+cu130" in (FIXTURES / "python-torch.txt").read_text()  # what that host ran
    assert runs_on(build_archs("2.11", "cu130"), (9, 0))


@pytest.mark.parametrize(
    "driver, caps, names, version, variant",
    [
        ("13.0", [(7, 0)], [V100], "2.10", "cu128"),  # cu130 and 2.11's cu128 have no sm_70
        ("12.9", [(7, 0)], [V100], "2.10", "cu128"),  # not 2.8 cu129: its release notes dropped sm_70
        ("12.8", [(7, 0), (8, 0)], [V100, "NVIDIA A100-SXM4-80GB"], "2.10", "cu128"),  # mixed: one serves both
        ("12.8", [(6, 0)], [P100], "2.11", "cu126"),  # Pascal: no cu128 build at all
        ("13.0", [(6, 1)], ["Tesla P40"], "2.11", "cu126"),
        ("13.0", [(5, 2)], ["Tesla M60"], "2.11", "cu126"),  # Maxwell
        ("12.4", [(6, 0)], [P100], "2.6", "cu124"),  # the driver's own limit: as before
        ("12.8", [(7, 5)], ["Tesla T4"], "2.11", "cu128"),  # Turing is in every build
        ("13.0", [(10, 0), (9, 0)], ["NVIDIA B200", "NVIDIA H200"], "2.11", "cu130"),
    ],
)
def test_old_gpus_get_a_build_with_their_kernels(driver, caps, names, version, variant):
    c = select_torch(driver_cuda=driver, compute_caps=caps, gpu_names=names)
    assert (c.version, c.variant, c.blocked) == (version, variant, "")
    for cc in caps:
        assert runs_on(build_archs(c.version, c.variant), cc)


def test_the_fallback_says_why():
    c = select_torch(driver_cuda="13.0", compute_caps=[(7, 0)], gpu_names=[V100])
    assert f"with kernels for {V100} (sm_70)" in c.reason
    (note,) = c.notes
    assert note.startswith(f"torch 2.11 cu130 has no kernels for {V100} (sm_70) (its kernels: sm_75 ")
    assert "so torch 2.10 cu128 instead" in note


def test_without_a_visible_driver_the_gpus_still_decide():
    """A Slurm login node: sinfo says V100 and A100; torch 2.11's lowest build, cu126, has both."""
    c = select_torch(driver_cuda="", compute_caps=[(7, 0), (8, 0)], gpu_names=["v100", "a100"])
    assert (c.version, c.variant) == ("2.11", "cu126")
    blackwell_and_pascal = select_torch(driver_cuda="", compute_caps=[(6, 0), (10, 0)], gpu_names=["p100", "b200"])
    assert "no single torch build" in blackwell_and_pascal.blocked


def test_a_mixed_host_no_build_serves_is_refused_naming_the_gpus():
    c = select_torch(driver_cuda="12.8", compute_caps=[(10, 0), (6, 1)], gpu_names=["NVIDIA B200", "Tesla P40"])
    assert c.variant == "" and c.blocked
    assert c.blocked.startswith("no single torch build has kernels for all of these GPUs")
    assert "Tesla P40 (sm_61) runs torch 2.1-2.7 cu118" in c.blocked and "torch 2.6-2.11 cu126" in c.blocked
    assert "NVIDIA B200 (sm_100) runs torch 2.7-2.11 cu128" in c.blocked
    # three GPUs, one of them the problem: named as the one to leave out
    three = select_torch(
        driver_cuda="13.0",
        compute_caps=[(10, 0), (12, 0), (6, 0)],
        gpu_names=["NVIDIA B200", "NVIDIA RTX PRO 6000 Blackwell", P100],
    )
    assert f"(one would serve the others without {P100} (sm_60)):" in three.blocked, three.blocked
    # two GPUs: either one is the odd one out
    assert "without Tesla P40 (sm_61) or without NVIDIA B200 (sm_100)" in c.blocked


def test_a_gpu_no_build_has_kernels_for_is_refused():
    c = select_torch(driver_cuda="13.0", compute_caps=[(3, 7)], gpu_names=["Tesla K80"])
    assert c.blocked.startswith("no torch build has kernels for Tesla K80 (sm_37) (the builds have kernels for sm_50")
    assert "torch: preinstalled" in c.blocked


def test_a_gpu_whose_builds_the_driver_cannot_run_names_the_driver():
    c = select_torch(driver_cuda="11.8", compute_caps=[(10, 0)], gpu_names=["NVIDIA B200"])
    assert c.blocked.startswith(
        "NVIDIA B200 (sm_100) needs torch 2.7-2.11 cu128, torch 2.8 cu129, torch 2.9-2.11 cu130"
    )
    assert c.blocked.endswith("and the driver runs none of them; update the NVIDIA driver")


def test_a_pinned_torch_without_kernels_for_the_gpu_is_refused():
    """torch 2.2 (the MDLM seed's pin) has no Blackwell kernels in any build."""
    c = select_torch(version="2.2", driver_cuda="12.8", compute_caps=[(10, 0)], gpu_names=["NVIDIA B200"])
    assert c.blocked.startswith("no torch 2.2 build has kernels for NVIDIA B200 (sm_100)")
    pinned_old = select_torch(version="2.6", driver_cuda="13.0", compute_caps=[(12, 0)], gpu_names=["RTX 5090"])
    assert "no torch 2.6 build has kernels for RTX 5090 (sm_120)" in pinned_old.blocked


def test_pinned_variants_are_checked_against_the_gpus():
    # torch.version auto, torch.cuda cu128: the newest torch whose cu128 build has sm_70
    c = select_torch(driver_cuda="13.0", cuda="cu128", compute_caps=[(7, 0)], gpu_names=[V100])
    assert (c.version, c.variant, c.blocked) == ("2.10", "cu128", "")
    assert any("so torch 2.10 cu128 instead" in n for n in c.notes)
    # no torch has a cu130 build with sm_70: refused, naming the GPU and the build that has it
    c = select_torch(driver_cuda="13.0", cuda="cu130", compute_caps=[(7, 0)], gpu_names=[V100])
    assert c.blocked == (
        f"torch 2.11 cu130 has no kernels for {V100} (sm_70) "
        "(its kernels: sm_75 sm_80 sm_86 sm_90 sm_100 sm_120); torch 2.11's cu126 build has them"
    )
    exact = select_torch(version="2.11.0", cuda="cu128", driver_cuda="12.8", compute_caps=[(6, 0)])
    assert "torch 2.11.0 cu128 has no kernels for sm_60" in exact.blocked
    assert not select_torch(version="2.11", cuda="cu126", driver_cuda="12.8", compute_caps=[(6, 0)]).blocked


# --- in the plan -------------------------------------------------------------------------------


def _plan(gpus, cuda="13.0", **spec):
    facts = make_facts(gpus=gpus, cuda=cuda)
    return bp.build_plan(facts, envspec.parse({"manager": "venv", **spec}, "default"), host="nigel")


def test_the_plan_installs_the_fallback_and_says_why():
    plan = _plan([(V100, "7.0", 32768)])
    torch_step = plan.step("torch")
    assert "'torch==2.10.*' --index-url https://download.pytorch.org/whl/cu128" in torch_step.command
    assert any("has no kernels for Tesla V100-SXM2-32GB (sm_70)" in n for n in torch_step.notes), torch_step.notes


def test_the_plan_blocks_a_mixed_host_naming_the_gpu():
    plan = _plan([("NVIDIA B200", "10.0", 183359), ("Tesla P40", "6.1", 24576)], cuda="12.8")
    torch_step = plan.step("torch")
    assert torch_step.state == "blocked" and torch_step.blocked_code == "host"
    assert "no single torch build has kernels for all of these GPUs" in torch_step.why
    assert "Tesla P40 (sm_61)" in torch_step.why and "NVIDIA B200 (sm_100)" in torch_step.why
    assert plan.step("verify").state == "blocked"
