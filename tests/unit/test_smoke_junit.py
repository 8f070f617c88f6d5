"""`orch smoke --junit`: the report stays XML whatever the host's text holds."""

from xml.etree import ElementTree as ET

from orchestrator.runs.smoke import Step, junit_xml

# What a host's output can hold that XML 1.0 cannot: ESC and other C0 controls, a lone
# surrogate (undecodable bytes), U+FFFE/U+FFFF; and C1 controls, which it discourages.
HOSTILE = (
    "torch failed\x1b[31m red\x1b[0m\x00\x07\x0b\x0c\x7f\x9b\ud800\ufffe\uffff tab\there\r\nnext line é 漢 \U0001f600"
)
ESCAPED = (
    "torch failed\\x1b[31m red\\x1b[0m\\x00\\x07\\x0b\\x0c\\x7f\\x9b\\ud800\\ufffe\\uffff"
    " tab\there\r\nnext line é 漢 \U0001f600"
)


def test_host_text_with_characters_xml_forbids_still_makes_parseable_xml():
    steps = [
        Step("connect", "passed", detail="host key verified"),
        Step("env imports torch+transformers", "failed", detail=HOSTILE),
        Step("GPU kernels", "skipped", detail="no GPU: " + HOSTILE),
        Step("versions", "passed", detail=HOSTILE),
    ]
    xml = junit_xml("gpu\x1bbox", steps)
    suite = ET.fromstring(xml)
    assert suite.get("name") == "orch smoke gpu\\x1bbox" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    failure = cases[1].find("failure")
    # (an XML parser turns \r\n into \n)
    assert failure.text == ESCAPED.replace("\r\n", "\n") and failure.get("message") == "torch failed\\x1b[31m red" + (
        "\\x1b[0m\\x00\\x07\\x0b\\x0c\\x7f\\x9b\\ud800\\ufffe\\uffff tab\there"
    )
    skipped = cases[2].find("skipped").get("message")
    assert skipped.startswith("no GPU: torch failed\\x1b[31m") and "\x1b" not in skipped
    assert cases[3].find("system-out").text == ESCAPED.replace("\r\n", "\n")
    assert steps[1].detail == HOSTILE  # the caller's steps (--json prints them) are left as they were
