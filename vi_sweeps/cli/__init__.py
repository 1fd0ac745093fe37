"""`vi-sweep`: the commands, thin over the library (the analysis layer is imported only here, on
the report path)."""

from vi_sweeps.cli.commands import entry, main

__all__ = ["entry", "main"]
