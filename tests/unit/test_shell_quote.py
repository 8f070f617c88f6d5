"""orchestrator/transport/shell.py: every word it quotes reaches the program as itself.

Each helper's text is run by a real `sh -c`, which hands its words to `printf '%s\\0'`, so
what comes back, NUL-separated, is exactly the argv the shell made of the text.  A word
that reaches the host changed (`$HOME` expanded, `*` globbed, `;` starting a second
command) is a word orch did not mean to send.
"""

import os
import subprocess

import pytest
import timing

from orchestrator.transport import shell

SPECIAL = list("$`\\'\";&|*?~()<>!#{}") + [" ", "\t", "\n"]
WORDS = (
    SPECIAL
    + [f"a{c}b" for c in SPECIAL]
    + [
        "$HOME",  # a word of letters, digits and $: the shell expands it unless quoted
        "$1",
        "${HOME}",
        "a$HOME/b",
        "~root",
        "~",
        "*.py",
        "$(echo hi)",
        "`echo hi`",
        "a;echo hi",
        "it's",
        "x=$HOME",
        "--flag",
        "-",
        "-n",  # printf would read it as an option if it were not a word after the format
        "",
        "é",
        "naïve $HOME",
        "日本語",
        "\u00a0",  # a non-breaking space: not a space to sh
        "plain-word_1.2:3,4@5%6+7=8/9",
    ]
)


def _argv(text: str, env=None) -> list:
    """The words `sh -c TEXT` passes on; TEXT must end in words for printf '%s\\0'."""
    out = subprocess.run(
        ["sh", "-c", text],
        capture_output=True,
        timeout=timing.scaled(20),
        cwd="/",
        env={"HOME": "/home/nobody", "PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", **(env or {})},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(b"\0") or out.stdout == b""
    return [w.decode("utf-8") for w in out.stdout.split(b"\0")[:-1]]


@pytest.mark.parametrize("word", WORDS, ids=ascii)
def test_join_passes_each_word_byte_for_byte(word):
    assert _argv(shell.join(["printf", "%s\\0", word])) == [word]
    assert shell.quote(word) == shell.join([word])


def test_join_passes_every_word_at_once():
    assert _argv(shell.join(["printf", "%s\\0", *WORDS])) == WORDS


def test_join_refuses_an_empty_command():
    with pytest.raises(ValueError, match="empty command"):
        shell.join([])


@pytest.mark.parametrize("value", WORDS, ids=ascii)
def test_with_env_passes_the_value_and_the_command_as_they_are(value):
    text = shell.with_env(["sh", "-c", 'printf "%s\\0" "$V" "$@"', "_", value], {"V": value})
    assert _argv(text) == [value, value]


@pytest.mark.parametrize("name", ["A B", "A;B", "1A", "", "A=B", "$A"])
def test_with_env_refuses_a_name_that_is_not_one(name):
    with pytest.raises(ValueError, match="illegal environment variable name"):
        shell.with_env(["true"], {name: "x"})


def test_in_dir_and_chain_keep_a_folder_of_any_name(tmp_path):
    folder = tmp_path / "a $HOME; `b` 'c' * ~ é\tz"
    folder.mkdir()
    text = shell.chain(
        shell.in_dir(str(folder), shell.join(["sh", "-c", 'printf "%s\\0" "$PWD"'])),
        shell.join(["printf", "%s\\0", "$HOME;"]),
    )
    assert _argv(text) == [str(folder), "$HOME;"]


def test_with_path_puts_quoted_folders_first_and_keeps_the_rest(tmp_path):
    odd = tmp_path / "bin $HOME;*"
    odd.mkdir()
    tool = odd / "orch-test-tool"
    tool.write_text('#!/bin/sh\nprintf "%s\\0" found "$@"\n')
    tool.chmod(0o755)
    text = shell.with_path([str(odd)], shell.join(["orch-test-tool", "$HOME"]) + "; " + 'printf "%s\\0" "$PATH"')
    found, arg, path = _argv(text)
    assert (found, arg) == ("found", "$HOME")
    assert path == f"{odd}:{os.environ['PATH']}"
    assert shell.with_path([], "true") == "true"
