"""What every command-line entry point shares: loading settings, failing with one clear line."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError

from clinscribe.config import Settings, get_settings
from clinscribe.errors import ClinscribeError


def fail(error: ClinscribeError) -> NoReturn:
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(code=2)


def load_settings() -> Settings:
    """Load settings, or exit with one line per bad variable naming it and what is wrong."""
    try:
        return get_settings()
    except ValidationError as error:
        for problem in error.errors():
            name = "CLINSCRIBE_" + "__".join(str(p).upper() for p in problem["loc"])
            typer.echo(f"error: {name}: {problem['msg']}", err=True)
        raise typer.Exit(code=2) from None
