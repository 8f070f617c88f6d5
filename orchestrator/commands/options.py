"""Options several commands share, defined once so that they read the same in every --help.

Imported only by the command modules (which load Typer anyway): `orch --help` stays free
of Typer (tests/unit/test_cli_help.py).
"""

from __future__ import annotations

import typer

TRUST = typer.Option(
    False, "--trust-new-host-key", help="Record the host's key if it is not in known_hosts yet (trust on first use)."
)
