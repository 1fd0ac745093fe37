"""A pytest plugin that says which modules of vi_sweeps/, vi_contract/ and analysis/ a test run
exercised (a function of the module was called, not only its import), for a venv without
`coverage`. Usage, from the repository root:

    PYTHONPATH=$PWD:$PWD/scripts .venv/bin/python -m pytest -p modules_used -m "not slow" -q

It prints the modules none of whose functions ran (and, of those, the ones never even imported)
and exits as pytest does. Only this process is profiled: run it without -n (xdist workers are
processes of their own); a subprocess's calls are not seen.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vi_sweeps", "vi_contract", "analysis")
_called: set[str] = set()


def _profile(frame, event, arg):
    if event == "call" and frame.f_code.co_name != "<module>":
        _called.add(frame.f_code.co_filename)


def modules() -> dict[str, Path]:
    """Every module of the three packages, by its dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def pytest_configure(config):
    sys.setprofile(_profile)
    threading.setprofile(_profile)


def pytest_runtest_setup(item):
    if sys.getprofile() is not _profile:  # something in a test (or a library it called) replaced it
        sys.setprofile(_profile)


def pytest_unconfigure(config):
    sys.setprofile(None)
    threading.setprofile(None)
    called = {str(Path(f).resolve()) for f in _called}
    imported = {str(Path(m.__file__).resolve()) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    everything = modules()
    not_called = [name for name, path in everything.items() if str(path.resolve()) not in called]
    never_imported = [name for name in not_called if str(everything[name].resolve()) not in imported]
    print(f"\nmodules_used: {len(everything) - len(not_called)} of {len(everything)} modules had a function called")
    print("no function called (imported only):",
          ", ".join(n for n in not_called if n not in never_imported) or "none")
    print("never imported:", ", ".join(never_imported) or "none")
