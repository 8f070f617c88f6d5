"""Host text on the laptop's terminal (orchestrator/terminal.py, output.py's safety net):
control characters are shown as escapes; newlines, tabs and, in a log, carriage returns
and colour are kept.  The real path (orch logs, logs -f, errors quoting the host, through
the real sshd) is tests/integration/test_hostile_host.py."""

import io
import re

import pytest
from rich.control import Control
from rich.table import Table
from rich.text import Text

from orchestrator import output, terminal
from orchestrator.commands import quickpath
from orchestrator.errors import ExitCode, OrchError

# What a hostile host would send: clipboard write, title, clear screen, cursor report
# (the terminal answers on the shell's input), C1 CSI, NUL, DEL, backspace.
EVIL = "\x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x1b\\\x1b[2J\x9b6n\x1b[1;1H\x00\x7f\x08"
SGR = re.compile(r"\x1b\[[0-9;:]*m")


def acting_controls(text: str, keep: str = "\n\t") -> list:
    """The control characters in TEXT a terminal would act on (colour sequences aside)."""
    return [ch for ch in SGR.sub("", text) if (ord(ch) < 32 or 127 <= ord(ch) < 160) and ch not in keep]


def test_visible_is_one_line_with_every_control_escaped():
    assert terminal.visible("plain text é 漢") == "plain text é 漢"
    assert terminal.visible("a\nb\tc\r") == "a\\nb\\tc\\r"
    assert terminal.visible(EVIL) == (
        "\\x1b]52;c;ZXZpbA==\\x07\\x1b]0;owned\\x1b\\\\x1b[2J\\x9b6n\\x1b[1;1H\\x00\\x7f\\x08"
    )
    assert not acting_controls(terminal.visible(EVIL + "\n"), keep="")


# Host text that reorders or hides what the terminal shows: a right-to-left override
# (U+202E: "exe.pdf" shown as "fdp.exe"), isolates, zero-width space and joiner, BOM, a
# tag character, the line and paragraph separators.
BIDI = "ok \u202eexe.pdf\u202c \u2066x\u2069 a\u200bb\u200dc\ufeff\U000e0041 l1\u2028l2\u2029"
BIDI_ESCAPED = "ok \\u202eexe.pdf\\u202c \\u2066x\\u2069 a\\u200bb\\u200dc\\ufeff\\U000e0041 l1\\u2028l2\\u2029"


def test_format_characters_and_separators_are_escaped_like_controls():
    assert terminal.visible(BIDI) == BIDI_ESCAPED
    assert terminal.shown("reason:\n\t" + BIDI) == "reason:\n\t" + BIDI_ESCAPED
    assert terminal.log_text("\x1b[32m" + BIDI + "\r\n") == "\x1b[32m" + BIDI_ESCAPED + "\r\n"
    assert terminal.has_control("\u202e") and terminal.has_control("a\u200b")
    assert terminal.visible("Arabic \u0627\u0644\u0639 Hebrew \u05e9\u05dc\u05d5\u05dd é 漢 \u2192") == (
        "Arabic \u0627\u0644\u0639 Hebrew \u05e9\u05dc\u05d5\u05dd é 漢 \u2192"
    )  # right-to-left letters themselves are text, not controls
    sink = io.StringIO()
    stream = terminal.LogStream(sink)
    stream.write("a\u202e")
    stream.write("b\n")
    stream.close()
    assert sink.getvalue() == "a\\u202eb\n"


def test_every_format_character_unicodedata_knows_is_escaped():
    """terminal.py writes the Cf ranges out; none this Python's unicodedata knows is missing."""
    import unicodedata

    every = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cf", "Zl", "Zp")]
    missed = [f"U+{ord(ch):04X}" for ch in every if terminal.visible(ch) == ch or terminal.log_text(ch) == ch]
    assert not missed


def test_shown_keeps_lines_and_tabs_only():
    text = "error on host:\n\tline " + EVIL + "\r\x1b[31mred\x1b[0m"
    out = terminal.shown(text)
    assert out.startswith("error on host:\n\tline \\x1b]52;c;")
    assert "\\r\\x1b[31mred\\x1b[0m" in out  # not even colour: a message is ours to colour
    assert not acting_controls(out)


def test_log_text_keeps_colour_and_carriage_returns_and_escapes_the_rest():
    line = "step 1\r step 2\r\n\x1b[32mok\x1b[0m \x1b[1;31mbold red\x1b[m\t" + EVIL + "\n"
    out = terminal.log_text(line)
    assert out.startswith("step 1\r step 2\r\n\x1b[32mok\x1b[0m \x1b[1;31mbold red\x1b[m\t")
    assert "\\x1b]52;c;ZXZpbA==\\x07" in out and "\\x1b[2J" in out and "\\x1b[1;1H" in out
    assert "\\x9b6n" in out and "\\x00\\x7f\\x08" in out
    assert not acting_controls(out, keep="\n\t\r")
    assert terminal.log_text("plain\n") == "plain\n"


@pytest.mark.parametrize("cut", range(1, 12))
def test_a_streamed_log_keeps_a_colour_sequence_split_between_chunks(cut):
    text = "ab\x1b[1;32mgreen\x1b[0m \x1b]0;t\x07 end\x1b"
    sink = io.StringIO()
    stream = terminal.LogStream(sink)
    stream.write(text[:cut])
    stream.write(text[cut:])
    stream.close()
    assert sink.getvalue() == "ab\x1b[1;32mgreen\x1b[0m \\x1b]0;t\\x07 end\\x1b"  # a bare ESC at the end too


def test_a_streamed_log_never_holds_back_more_than_a_colour_sequence():
    sink = io.StringIO()
    stream = terminal.LogStream(sink)
    stream.write("x\x1b[" + "1" * 40)  # too long to be a colour sequence we wait for
    assert sink.getvalue() == "x\\x1b[" + "1" * 40
    stream.write("\x1b")
    assert sink.getvalue().endswith("1")  # held: the next chunk may complete it
    stream.write("]")
    assert sink.getvalue().endswith("\\x1b]")


def rendered(*objects, **kw) -> str:
    made = output.console(file=io.StringIO(), force_terminal=True)
    made.print(*objects, **kw)
    return made.file.getvalue()


def test_every_rich_print_drops_host_controls_but_keeps_its_own_codes():
    table = Table("job", "reason")
    table.add_row("class-0", Text("failed: " + EVIL))
    out = rendered(table)
    assert "\\x1b]52;c;ZXZpbA==" in out and "\\x1b[2J" in out
    assert not acting_controls(out)
    assert "\x1b[1m" in out  # the header's own bold: a style, not text
    table = Table("job", "reason")
    table.add_row("class-0", Text("failed: " + BIDI))
    out = rendered(table)
    assert "\\u202eexe.pdf\\u202c" in out
    assert not [ch for ch in out if ch != terminal.visible(ch) and ch not in "\n\x1b"]
    plain = rendered("note " + EVIL, markup=False)
    assert "\\x1b]0;owned" in plain and not acting_controls(plain)
    # Rich's own control segments (a Live view moving the cursor) pass.
    assert "\x1b[?25l" in rendered(Control.show_cursor(False))
    assert "\x1b[31m" in rendered("[red]red[/]")


def test_warnings_and_errors_quoting_a_host_show_its_controls_as_escapes(capsys):
    output.warn("the host said: " + EVIL)
    exc = OrchError("command failed on h (exit 1)\n  " + EVIL, ExitCode.REMOTE, hint="look at " + EVIL)
    quickpath.error(exc)  # the stdlib path (orch status) writes the stream itself
    err = capsys.readouterr().err
    assert err.count("\\x1b]52;c;ZXZpbA==") == 3 and not acting_controls(err)
    assert "error: command failed on h (exit 1)\n  \\x1b]52;c;" in err
