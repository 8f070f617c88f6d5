"""orch data get NAME: the data sets the shipped experiments read, fetched and converted."""

from __future__ import annotations

import json

import typer

from orchestrator import output
from orchestrator.config.project import Project
from orchestrator.data.registry import KNOWN
from orchestrator.errors import ExitCode, OrchError

data_app = typer.Typer(help="Data sets the shipped experiments use: get.", no_args_is_help=True)


@data_app.command("get")
def get_cmd(
    name: str = typer.Argument(..., metavar="NAME", help="Data set: " + ", ".join(KNOWN) + "."),
    url: str = typer.Option("", "--url", metavar="URL", help="Download from this mirror instead of the official URL."),
    sha256: str = typer.Option(
        "", "--sha256", metavar="HEX", help="Expect this archive checksum (only for a mirror that serves another file)."
    ),
    force: bool = typer.Option(False, "--force", help="Write the files again even if they are up to date."),
    as_json: bool = typer.Option(False, "--json", help="Print where the files came from as JSON."),
    quiet: bool = output.quiet_option(),
):
    """Download a data set (checksum verified, resumable) and write the JSONL files the experiments read."""
    from orchestrator.data import imdb

    if name not in KNOWN:
        raise OrchError(
            f"no data set {name!r}", ExitCode.USAGE, hint="known: " + "; ".join(f"{k}: {v}" for k, v in KNOWN.items())
        )
    digest = sha256.strip().lower() or imdb.SHA256
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise OrchError(f"--sha256 {sha256!r}: expected 64 hex digits", ExitCode.USAGE)
    project = Project.find()
    source = imdb.get(project.root, url=url or imdb.URL, sha256=digest, force=force)
    if as_json:
        print(json.dumps(source))
        return
    for split, path in source["files"].items():  # what it produced: stdout
        output.out.print(f"{path}  {source['counts'][split]} reviews", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
