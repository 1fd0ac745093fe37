"""Migration: the pack a trial trained in, and its place there, become part of its id.

Packed arithmetic rounds differently for each pack size and each place in a pack, and a GAN
carries a difference in the last bit into another run, so a trial id names one sequence of
numbers only with `pack_size` and `pack_index` in it. Results written before (schema 2 without
those columns) were trained in the study's layout (vi_sweeps.study.expansion.pack_layout of its seeds by
`pack_seeds`; a search's suggestion: its seeds in order), and recorded each trial's pack size
(`pack`); this gives each trial the id it has now, checking the recorded size against the
layout. Folders are local (an export, a results folder); files are renamed and the tables
rewritten in place, the tables last.

Second, the key declarations: a contract written before keys declared a role, a note and a
scale (vi_sweeps.core.keys) gets them from the code's declarations of the same keys, in
contract.json and in the tables' metadata (their data untouched), so a committed report keeps
its notes when it is regenerated.

    python -m vi_sweeps.engine.migrate FOLDER [FOLDER ...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vi_contract import schema
from vi_contract.read import check_version
from vi_contract.tables import with_metadata
from vi_sweeps.gan.families import OBJECTIVES
from vi_sweeps.metrics.evaluators import EVALUATORS
from vi_sweeps.study import claims
from vi_sweeps.study.config import TrialConfig, field_docs
from vi_sweeps.study.expansion import pack_layout, seed_list
from vi_sweeps.study.load import load_study, load_study_text

PLACE = ("pack_size", "pack_index")


def places(root: Path) -> dict[int, tuple[int, int]]:
    """seed -> (pack size, place) in the layout the folder's study trained its seeds in."""
    spec = load_study_text((root / schema.STUDY_FILE).read_text(), str(root / schema.STUDY_FILE)).spec
    seeds, k = seed_list(spec), spec.pack_seeds
    if spec.search is not None:
        seeds = list(range(spec.search.seeds_per_trial))
        k = len(seeds)
    return {seeds[i]: (len(chunk), i - chunk.start) for chunk in pack_layout(len(seeds), k) for i in chunk}


def new_ids(trials: pd.DataFrame, layout: dict[int, tuple[int, int]]) -> dict[str, str]:
    """old id -> new id, for every trial; a row whose columns do not give its old id, or whose
    recorded pack size is not its layout's, is refused (it would be given a wrong id)."""
    fields = set(TrialConfig.model_fields) - set(PLACE)
    out = {}
    for _, row in trials.iterrows():
        config = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                  if k in fields and not (isinstance(v, float) and math.isnan(v))}
        old = TrialConfig(**config)
        if old.trial_id != row["trial_id"]:
            raise ValueError(f"trial {row['trial_id']}: its columns give id {old.trial_id}; not a schema-2 row")
        size, index = layout[int(row["seed"])]
        if size != int(row["pack"]):
            raise ValueError(f"trial {row['trial_id']}: trained in a pack of {row['pack']}, its layout's is {size}")
        out[row["trial_id"]] = old.model_copy(update={"pack_size": size, "pack_index": index}).trial_id
    return out


def _rewrite(path: Path, ids: dict[str, str], place: dict[str, tuple[int, int]] | None = None) -> None:
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame["trial_id"] = frame["trial_id"].map(lambda t: ids.get(t, t))
    if place is not None:
        for i, key in enumerate(PLACE):
            frame.insert(list(frame.columns).index("trial_id"), key, frame["trial_id"].map(lambda t, i=i: place[t][i]))
    meta = table.schema.metadata or {}
    contract = json.loads(meta[schema.CONTRACT_KEY]) if schema.CONTRACT_KEY in meta else None
    if contract is not None:
        out = with_metadata(frame, _with_pack_size(contract), schema.version_of(meta, absent="2"))
    else:
        out = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(meta)
    tmp = path.with_suffix(".parquet.migrating")
    pq.write_table(out, tmp)
    tmp.replace(path)


def _with_pack_size(contract: dict) -> dict:
    config = dict(contract.get("config", {}))
    for key in PLACE:
        config[key] = {"default": TrialConfig.model_fields[key].default, "execution": False, "doc": field_docs()[key]}
    return {**contract, "config": config}


def migrate(folder: str | Path) -> int:
    """Give every trial of a schema-2 folder its id with its pack size and place; returns how
    many ids changed (0 for a folder already migrated)."""
    root = Path(folder)
    table = pq.read_table(root / schema.TRIALS_FILE)
    version = schema.version_of(table.schema.metadata, absent="")
    check_version(version, str(root / schema.TRIALS_FILE))  # a version it does not know: one line, exit 2
    if version != "2" or "pack_size" in table.column_names:
        return 0  # written with the pack in the id: schema 3, or schema 2 migrated
    trials = table.to_pandas()
    layout = places(root)
    ids = new_ids(trials, layout)
    place = {ids[t]: layout[int(seed)] for t, seed in zip(trials["trial_id"], trials["seed"], strict=True)}
    for old, new in ids.items():
        for sub in (schema.SAMPLES_DIR,):
            if (root / sub / old).exists():
                (root / sub / old).rename(root / sub / new)
        for sub, suffix in ((schema.TRIALS_DIR, ".parquet"), (schema.CHECKPOINTS_DIR, ".pt"), (schema.ERRORS_DIR, ".json")):
            if (root / sub / f"{old}{suffix}").exists():
                (root / sub / f"{old}{suffix}").rename(root / sub / f"{new}{suffix}")
    for path in sorted((root / schema.TRIALS_DIR).glob("*.parquet")):
        _rewrite(path, ids, place)
    search = root / schema.SEARCH_FILE
    if search.exists():
        frame = pd.read_parquet(search)
        frame["user_attrs_trial_ids"] = frame["user_attrs_trial_ids"].map(
            lambda s: ",".join(ids.get(t, t) for t in s.split(",")) if isinstance(s, str) else s)
        frame.to_parquet(search, index=False)
    if (root / schema.CONTRACT_FILE).exists():
        contract = json.loads((root / schema.CONTRACT_FILE).read_text())
        (root / schema.CONTRACT_FILE).write_text(json.dumps(_with_pack_size(contract), indent=1, default=str))
    _rewrite(root / schema.METRICS_FILE, ids)
    _rewrite(root / schema.TRIALS_FILE, ids, place)
    return sum(old != new for old, new in ids.items())


def declarations() -> dict[str, dict]:
    """Every key the code declares (objectives' losses, evaluators' metrics), described."""
    out = {}
    for registry, field in ((OBJECTIVES, "losses"), (EVALUATORS, "metrics")):
        for name in registry.names():
            out.update({str(k): k.describe() for k in getattr(registry.meta(name), field)})
    return out


def declare_keys(folder: str | Path) -> int:
    """Add the fields a folder's key declarations lack (role, note, scale) from the code's;
    returns how many keys gained fields (0 for a folder already declared)."""
    root = Path(folder)
    path = root / schema.CONTRACT_FILE
    contract = json.loads(path.read_text()) if path.exists() else {}
    code, changed = declarations(), 0
    keys = {}
    for key, decl in contract.get("keys", {}).items():
        extra = {f: v for f, v in code.get(key, {}).items() if f not in decl}
        keys[key] = {**decl, **extra}
        changed += bool(extra)
    if not changed:
        return 0
    contract = {**contract, "keys": keys}
    path.write_text(json.dumps(contract, indent=1, default=str))
    for table_path in [root / schema.TRIALS_FILE, root / schema.METRICS_FILE, *sorted((root / schema.TRIALS_DIR).glob("*.parquet"))]:
        if table_path.exists():
            table = pq.read_table(table_path)
            meta = dict(table.schema.metadata or {})
            if schema.CONTRACT_KEY in meta:
                meta[schema.CONTRACT_KEY] = json.dumps({**json.loads(meta[schema.CONTRACT_KEY]), "keys": keys}).encode()
                tmp = table_path.with_suffix(".parquet.migrating")
                pq.write_table(table.replace_schema_metadata(meta), tmp)
                tmp.replace(table_path)
    return changed


def record_after_the_fact(folder: str, study_file: str, note: str, today: str | None = None) -> int:
    """Record a study file's claims in a results folder (an export) that ran without them, with
    `note` saying so: the verdict then shows that they were declared after the trials. Returns
    how many claims were recorded; a folder that already records claims is refused."""
    path = Path(folder) / schema.CONTRACT_FILE
    contract = json.loads(path.read_text())
    if contract.get("claims"):
        raise ValueError(f"{path}: records claims already ({contract['claims'].get('declared')})")
    stored, _ = claims.record(load_study(study_file).spec, None, today)
    if stored is None:
        raise ValueError(f"{study_file}: declares no claims")
    path.write_text(json.dumps({**contract, "claims": {**stored, "note": note}}, indent=1, default=str))
    return len(stored["claims"])



def main(folders: list[str]) -> int:
    for name in folders:
        try:
            print(f"{name}: {migrate(name)} trial ids now name their pack size and place; "
                  f"{declare_keys(name)} keys gained their role, note and scale")
        except (OSError, ValueError, KeyError) as err:  # one line naming the folder, exit 2
            print(f"error: {name}: {getattr(err, 'strerror', None) or err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
