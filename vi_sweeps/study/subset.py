"""`vi-sweep run --only KEY=VALUE`: run a part of a study now and the rest later. The part is
chosen by config keys or axis labels (the same KEY twice: either value; two keys: both), and it
changes nothing else: the trials keep their ids and their packs (expansion.pack_layout is fixed by
the seeds), so a trial run in a part computes what it computes in a whole run, bit for bit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vi_sweeps.study.config import ConfigError, split_assignment
from vi_sweeps.study.expansion import Study


def parse_only(pairs: tuple[str, ...] | list[str]) -> dict[str, list[tuple[str, Any]]]:
    """KEY=VALUE strings to {key: [(the text given, the value read as a YAML scalar, as --set)]}."""
    wanted: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for pair in pairs:
        key, value, parsed = split_assignment(pair, "--only")
        wanted[key].append((value.strip(), parsed))
    return dict(wanted)


def _matches(present: Any, given: tuple[str, Any], label: bool) -> bool:
    """A label is text: matched by the text given (`off`, `1e3`, `010` stay what they say) or
    its quoted form; a config value by the value YAML reads."""
    text, parsed = given
    if label:
        return str(present) == text or (isinstance(parsed, str) and str(present) == parsed)
    return _same(present, parsed)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def select(study: Study, pairs: tuple[str, ...] | list[str]) -> set[str]:
    """The ids of the study's trials that match every KEY (one of its values). Raises
    ConfigError naming the key and its choices when a key is no config key or label of the
    study, or a value is none of the values the study gives that key."""
    source = f"{study.source}: --only"
    try:
        wanted = parse_only(pairs)
    except ConfigError as err:
        raise ConfigError(source, err.problems) from None
    rows = [(t.trial_id, {**t.config.model_dump(), **t.labels}) for t in study.trials]
    keys = sorted({k for _, values in rows for k in values} - {"trial_id"})
    problems = []
    for key, accepted in wanted.items():
        if key not in keys:
            problems.append(f"{key}: not a config key or axis of {study.name} (choices: {', '.join(keys)})")
            continue
        present = sorted({values[key] for _, values in rows if key in values}, key=str)
        for given in accepted:
            if not any(_matches(p, given, key in study.labelled) for p in present):
                problems.append(f"{key}={given[0]}: no trial of {study.name} has it (choices: "
                                f"{', '.join(map(str, present))})")
    if problems:
        raise ConfigError(source, problems)
    chosen = {tid for tid, values in rows
              if all(any(_matches(values.get(k), g, k in study.labelled) for g in accepted) for k, accepted in wanted.items())}
    if not chosen:
        raise ConfigError(source, [f"{' '.join(pairs)}: no trial of {study.name} matches all of these"])
    return chosen
