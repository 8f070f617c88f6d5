"""nvidia-smi parsers and diagnoses, on the real H200 outputs and the documented failures."""

import pytest
from hostfixtures import FAILURES, FIXTURES

from orchestrator.provision import gpu


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_query_csv_from_the_h200_host():
    (g,) = gpu.parse_query_csv(fixture("nvidia-smi-query.csv"))
    assert g.index == 0 and g.name == "NVIDIA H200"
    assert g.uuid == "GPU-19dd46cf-e7ba-50d1-f00f-aebf654ff5d8"
    assert g.memory_total_mib == 143771 and g.memory_used_mib == 0 and g.utilization_pct == 0
    assert g.compute_cap == "9.0" and g.compute_cap_source == "nvidia-smi"
    assert g.cc_tuple == (9, 0) and g.sm == 90
    assert g.pci_bus_id == "00000000:00:06.0"
    assert gpu.query_driver_version(fixture("nvidia-smi-query.csv")) == "580.159.04"


def test_xml_gives_the_drivers_max_cuda_version():
    info = gpu.parse_xml(fixture("nvidia-smi-q-x.xml"))
    assert info.driver_version == "580.159.04"
    assert info.cuda_version == "13.0"
    assert info.attached_gpus == 1
    (g,) = info.gpus
    assert g.name == "NVIDIA H200" and g.memory_total_mib == 143771 and g.utilization_pct == 0
    assert g.uuid.startswith("GPU-19dd46cf") and g.pci_bus_id == "00000000:00:06.0"


def test_plain_header_and_list():
    assert gpu.parse_plain_header(fixture("nvidia-smi.txt")) == ("580.159.04", "13.0")
    (g,) = gpu.parse_list(fixture("nvidia-smi-L.txt"))
    assert (g.index, g.name, g.uuid) == (0, "NVIDIA H200", "GPU-19dd46cf-e7ba-50d1-f00f-aebf654ff5d8")
    # the `-q` text form
    assert gpu.parse_plain_header(
        "Driver Version                            : 535.129.03\nCUDA Version                              : 12.2\n"
    ) == ("535.129.03", "12.2")


def test_full_report_from_the_fixture():
    report = gpu.build_report(
        smi_path="/usr/local/nvidia/bin/nvidia-smi",
        query_rc=0,
        query_out=fixture("nvidia-smi-query.csv"),
        xml_rc=0,
        xml_out=fixture("nvidia-smi-q-x.xml"),
    )
    assert report.ok and report.diagnosis.kind == "ok"
    assert report.driver_version == "580.159.04" and report.cuda_version == "13.0"
    assert report.compute_caps() == [(9, 0)]
    assert report.notes == []
    assert gpu.summary(report) == "1x NVIDIA H200 (sm_90, 140 GiB); driver 580.159.04, max CUDA 13.0"
    assert gpu.GpuReport.from_dict(report.to_dict()) == report


def test_old_driver_without_compute_cap_falls_back_to_the_name_table():
    # R470: the probe re-queries without compute_cap; the capability comes from the name.
    line = "0, Tesla T4, GPU-aaaa, 470.82.01, 15109, 0, 0, 00000000:00:04.0\n"
    xml_without_cuda = fixture("nvidia-smi-q-x.xml").replace("<cuda_version>13.0</cuda_version>", "")
    header = "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4     |"
    report = gpu.build_report(
        smi_path="nvidia-smi",
        query_rc=0,
        query_out=line,
        query_fields=gpu.QUERY_FIELDS_NO_CC,
        xml_rc=0,
        xml_out=xml_without_cuda,
        plain_rc=0,
        plain_out=header,
    )
    assert report.ok
    (g,) = report.gpus
    assert g.compute_cap == "7.5" and g.compute_cap_source == "name table"
    assert report.cuda_version == "11.4"  # from the plain header, since the XML had none
    assert any("compute_cap" in n for n in report.notes)


def test_invalid_field_message_is_recognised():
    assert gpu.is_invalid_field('Field "compute_cap" is not a valid field to query.\n')
    assert not gpu.is_invalid_field(fixture("nvidia-smi-query.csv"))


@pytest.mark.parametrize(
    "mode,kind,words",
    [
        ("no-driver", "no_driver", "could not communicate with the NVIDIA driver"),
        ("mismatch", "mismatch", "driver/library version mismatch"),
        ("no-devices", "no_devices", "found no GPUs"),
    ],
)
def test_documented_failures_become_diagnoses(mode, kind, words):
    message, rc = FAILURES[mode]
    d = gpu.diagnose(rc, message)
    assert d.kind == kind and words in d.message and d.hint
    report = gpu.build_report(smi_path="nvidia-smi", query_rc=rc, query_out=message)
    assert not report.ok and report.gpus == [] and report.diagnosis.kind == kind


def test_missing_binary_and_other_exit_codes():
    assert gpu.diagnose(127, "bash: nvidia-smi: command not found").kind == "missing"
    assert gpu.diagnose(None, "").kind == "missing"
    assert gpu.diagnose(4, "Insufficient Permissions").kind == "no_permission"
    assert gpu.diagnose(12, "NVML Shared Library Not Found").kind == "no_driver"
    assert gpu.diagnose(15, "GPU is lost").kind == "failed"
    other = gpu.diagnose(255, "Unknown Error\nmore")
    assert other.kind == "failed" and "exit 255" in other.message and "Unknown Error" in other.message
    # "No devices were found" sometimes comes with exit 0 on some drivers: still no GPUs.
    assert gpu.diagnose(0, "No devices were found").kind == "no_devices"


def test_garbage_query_output_is_a_diagnosis_not_an_exception():
    report = gpu.build_report(smi_path="nvidia-smi", query_rc=0, query_out="something odd, 1, 2\n")
    assert not report.ok and report.diagnosis.kind == "failed" and "parse" in report.diagnosis.message


def test_multi_gpu_query():
    text = (
        "0, NVIDIA A100-SXM4-80GB, GPU-a, 535.129.03, 81920, 10, 5, 8.0, 00000000:07:00.0\n"
        "1, NVIDIA A100-SXM4-80GB, GPU-b, 535.129.03, 81920, [N/A], [N/A], 8.0, 00000000:0F:00.0\n"
    )
    gpus = gpu.parse_query_csv(text)
    assert [g.index for g in gpus] == [0, 1] and gpus[1].memory_used_mib is None
    report = gpu.build_report(smi_path="nvidia-smi", query_rc=0, query_out=text)
    assert gpu.summary(report).startswith("2x NVIDIA A100-SXM4-80GB (sm_80, 80 GiB)")


@pytest.mark.parametrize(
    "name,cc",
    [
        ("Tesla T4", "7.5"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("NVIDIA A100-SXM4-80GB", "8.0"),
        ("NVIDIA A100 80GB PCIe", "8.0"),
        ("NVIDIA A10G", "8.6"),
        ("NVIDIA GeForce RTX 3090", "8.6"),
        ("NVIDIA RTX A6000", "8.6"),
        ("NVIDIA GeForce RTX 4090", "8.9"),
        ("NVIDIA L4", "8.9"),
        ("NVIDIA L40S", "8.9"),
        ("NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("NVIDIA H100 80GB HBM3", "9.0"),
        ("NVIDIA H200", "9.0"),
        ("NVIDIA GH200 480GB", "9.0"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA GeForce RTX 5090", "12.0"),
        ("Tesla P100-PCIE-16GB", "6.0"),
        ("Tesla K80", "3.7"),
        ("Some Future GPU", None),
        # Quadro RTX 4000/5000/6000/8000 are Turing: not the 40x0/50x0 GeForce series
        ("Quadro RTX 4000", "7.5"),
        ("Quadro RTX 5000", "7.5"),
        ("NVIDIA RTX 4000 SFF Ada Generation", "8.9"),
        ("NVIDIA RTX 5000 Ada Generation", "8.9"),
        ("NVIDIA GeForce RTX 2080 Ti", "7.5"),
        ("NVIDIA GeForce GTX 1080 Ti", "6.1"),
        ("NVIDIA GeForce GTX 1660 SUPER", "7.5"),
        ("NVIDIA TITAN RTX", "7.5"),
        ("NVIDIA TITAN V", "7.0"),
        ("Tesla V100S-PCIE-32GB", "7.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),
        ("NVIDIA TITAN X (Pascal)", None),  # "TITAN X" is Maxwell or Pascal: not guessed
    ],
)
def test_compute_capability_name_table(name, cc):
    assert gpu.compute_cap_from_name(name) == cc


def test_arch_names():
    assert [gpu.arch_name(c) for c in [(7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]] == [
        "Volta",
        "Turing",
        "Ampere",
        "Ampere",
        "Ada",
        "Hopper",
        "Blackwell",
        "Blackwell",
    ]
