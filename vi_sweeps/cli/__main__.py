"""`python -m vi_sweeps.cli`: the same commands as `vi-sweep`."""

from vi_sweeps.cli.commands import entry

entry()
