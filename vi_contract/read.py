"""Reading one results folder (a local path or a URI) into its two frames and the contract that
says what they mean (vi_contract/schema.py); every reader goes through here, so a version it
does not know is refused in one line, whatever reads it.

A folder with per-trial files (a running or finished sweep) is read from those files, so a
report never shows a stale consolidation; corrupt per-trial files, and files whose rows are not
the trial's their name says (vi_contract.tables.rows_problem), are skipped and named. A folder
without them (committed results) is read from trials.parquet and metrics.parquet, less any
trial they record twice.
Whatever the version it was written in (3, or 2 and 1 through vi_contract.upgrade), a folder
is returned as schema 3. Results written
before their keys declared a role and a scale (every folder before vi-sweeps 0.1's key roles,
the committed ones under docs/ among them) get the roles and scales of the built-in keys they
have (`ROLES_BEFORE_DECLARED`); their notes stay empty. Those written before keys declared
what they are blind to get the built-in fd_2d's (`BLIND_BEFORE_DECLARED`).
"""

from __future__ import annotations

import json
import posixpath

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import yaml

from vi_contract import schema, upgrade, yamlsafe
from vi_contract.files import LocationError, open_location, read_parquet, subfolder
from vi_contract.tables import TrialFiles, build_tables, read_errors


class ResultsError(ValueError):
    """A results folder or file that does not follow the contract."""


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    """A small text file of the folder; "" when it is not there; a file that is there but
    cannot be read, or is not UTF-8, is an error naming it."""
    try:
        with fs.open_input_stream(path) as f:
            data = f.read()
    except FileNotFoundError:
        return ""
    except OSError as err:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return ""
        raise ResultsError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not UTF-8 text") from None


def _read_json(fs: pafs.FileSystem, path: str) -> dict:
    text = _read_text(fs, path)
    try:
        value = json.loads(text) if text else {}
    except ValueError as err:
        raise ResultsError(f"{path}: not JSON ({err})") from None
    if not isinstance(value, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _study_yaml(text: str, path: str) -> dict:
    try:
        study = yamlsafe.safe_load(text) if text else {}
    except yaml.YAMLError as err:
        raise ResultsError(f"{path}: not a study file ({str(err).splitlines()[0]})") from None
    return study if isinstance(study, dict) else {}


def read_checked(fs: pafs.FileSystem, path: str, which: str) -> tuple[pd.DataFrame, str, dict]:
    """A contract table ("trials", "metrics" or "search"): (frame as written, schema version, contract);
    refuses what it cannot read."""
    try:
        table = read_parquet(fs, path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; run `vi-sweep run` to write it") from None
    except (pa.ArrowInvalid, OSError) as err:
        raise ResultsError(f"{path}: not a readable Parquet file ({err})") from None
    meta = table.schema.metadata or {}
    version = schema.version_of(meta, absent="")
    check_version(version, path)
    missing = [c for c in upgrade.required(version, which) if c not in table.column_names]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}")
    contract = json.loads(meta[schema.CONTRACT_KEY]) if schema.CONTRACT_KEY in meta else {}
    return table.to_pandas(), version, contract


def check_version(version: str, path: str) -> None:
    """A file of a schema this reader does not know is refused, naming it (live folders too:
    a contract.json or trial file of version 99 was read silently)."""
    if version not in schema.READABLE_VERSIONS:
        raise ResultsError(f"{path}: schema version {shown_version(version)}; this reader knows "
                           f"{schema.SCHEMA_VERSION!r} (and reads {', '.join(map(repr, schema.READABLE_VERSIONS[1:]))} "
                           "through shims)")


def shown_version(version: str) -> str:
    return repr(version[:20]) if version else "'absent'"


def _has_trial_files(fs: pafs.FileSystem, root: str) -> bool:
    infos = fs.get_file_info(pafs.FileSelector(posixpath.join(root, schema.TRIALS_DIR), allow_not_found=True))
    return any(i.type == pafs.FileType.File and i.path.endswith(".parquet") for i in infos)


# The shim for keys written before a key declared its role and scale (vi_sweeps.core.keys.Key): the
# values the built-in declarations (vi_sweeps.metrics.keys) gave them when roles were introduced.
ROLES_BEFORE_DECLARED = {
    "eval/fd_2d": {"role": "quality", "scale": "log", "better": "lower"},
    "eval/fd_digits": {"role": "quality", "scale": "log", "better": "lower"},
    "eval/fid_inception": {"role": "quality", "scale": "log", "better": "lower"},
    "eval/modes": {"role": "modes", "scale": "linear", "better": "higher"},
    "eval/modes_lit": {"role": "modes", "scale": "linear", "better": "higher"},
}


# The same for a field declared later still: what a built-in key is blind to (results written
# before keys declared `blind_to`; a key declared since without it is blind to nothing).
BLIND_BEFORE_DECLARED = {"eval/fd_2d": "modes"}


def declared_keys(contract: dict, columns) -> dict:
    """The contract with a role and a scale for each key its tables have: its own declaration,
    else (results written before keys declared them) ROLES_BEFORE_DECLARED's; and what a
    built-in key is blind to where the contract predates `blind_to` (BLIND_BEFORE_DECLARED)."""
    keys = {k: dict(v) for k, v in (contract.get("keys") or {}).items()}
    for key, shim in ROLES_BEFORE_DECLARED.items():
        if key in columns and "role" not in keys.get(key, {}):
            keys[key] = {**shim, **keys.get(key, {})}
    for key, blind in BLIND_BEFORE_DECLARED.items():
        if key in keys and "blind_to" not in keys[key]:
            keys[key]["blind_to"] = blind
    return {**contract, "keys": keys}


def once_each(trials: pd.DataFrame, metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Consolidated tables without the trials they record twice (a row of trials.parquet, or a
    step of metrics.parquet, repeated), and those trials' ids."""
    twice = sorted(set(trials.loc[trials["trial_id"].duplicated(), "trial_id"])
                   | set(metrics.loc[metrics.duplicated(["trial_id", "step"]), "trial_id"]))
    if not twice:
        return trials, metrics, []
    keep = lambda frame: frame[~frame["trial_id"].isin(twice)].reset_index(drop=True)  # noqa: E731
    return keep(trials), keep(metrics), twice


def _tuning(fs, root: str) -> bool:
    return fs.get_file_info(posixpath.join(root, schema.TUNE_DIR, schema.STUDY_FILE)).type == pafs.FileType.File


def still_tuning(location: str) -> bool:
    """A tune-then-test protocol's folder before its test trials start: its searches (RESULTS/tune)
    and nothing of its own yet."""
    try:
        fs, root = open_location(location)
        return not _read_text(fs, posixpath.join(root, schema.STUDY_FILE)) and _tuning(fs, root)
    except (LocationError, OSError, ResultsError):  # no folder to read: the reader of the results says so
        return False


def load_location(location: str) -> tuple[pd.DataFrame, pd.DataFrame, dict, list[str]]:
    """(trials, metrics, source, notes) of one folder."""
    try:
        fs, root = open_location(location)
        kind = fs.get_file_info(root).type
    except (LocationError, OSError) as err:
        raise ResultsError(str(err)) from None
    if kind != pafs.FileType.Directory:
        raise ResultsError(f"{location}: no such results folder")
    notes = []
    study = _read_text(fs, posixpath.join(root, schema.STUDY_FILE))
    if not study and _tuning(fs, root):
        raise ResultsError(f"{location}: a tune-then-test protocol whose test trials have not started (its searches "
                           f"are in {subfolder(location, schema.TUNE_DIR)}); `vi-sweep status {location}` shows "
                           "the tuning")
    try:
        versions = _read_json(fs, posixpath.join(root, schema.VERSIONS_FILE))
    except ResultsError as err:  # what produced the results is informative only: say so and go on
        versions = {}
        notes.append(f"{err}; versions not shown")
    contract = _read_json(fs, posixpath.join(root, schema.CONTRACT_FILE))
    check_version(str(contract.get("schema", schema.SCHEMA_VERSION)), subfolder(location, schema.CONTRACT_FILE))
    skipped: list[str] = []
    started = fs.get_file_info(posixpath.join(root, schema.TRIALS_FILE)).type != pafs.FileType.NotFound
    if study and not started and fs.get_file_info(posixpath.join(root, schema.TRIALS_DIR)).type == pafs.FileType.NotFound:
        # a sweep that has started but where no trial has reported yet
        trials, metrics = build_tables([], read_errors(fs, root, skipped))
        notes.append(f"{location}: no trial has reported yet")
    elif (fs.get_file_info(posixpath.join(root, schema.TRIALS_DIR)).type == pafs.FileType.Directory
          and (_has_trial_files(fs, root) or not started)):
        files = TrialFiles(fs, root, contract.get("study"))
        files.read()
        tables = []
        for name, (_, table) in sorted(files.cache.items()):
            version = schema.version_of(table.schema.metadata)
            check_version(version, subfolder(location, schema.TRIALS_DIR, name))
            tables.append(table if version == schema.SCHEMA_VERSION else
                          upgrade.v2_table(table, contract.get("labelled")))
        trials, metrics = build_tables(tables, read_errors(fs, root, skipped))
        if files.corrupt:
            notes.append(f"{location}: skipped unreadable trial file(s) {', '.join(files.corrupt)} "
                         "(the driver moves them to quarantine/ and runs those trials again)")
        if files.rejected:
            notes.append(f"{location}: skipped trial file(s) that are not their trial's rows: "
                         + "; ".join(f"{name} {why}" for name, why in sorted(files.rejected.items())[:5])
                         + (" ..." if len(files.rejected) > 5 else "")
                         + " (the driver moves them to quarantine/ and runs those trials again)")
        if files.unread:
            notes.append(f"{location}: {len(files.unread)} trial file(s) could not be read now (permissions or "
                         f"the store), so they are left out: {', '.join(files.unread[:5])}"
                         + (" ..." if len(files.unread) > 5 else ""))
    else:
        if fs.get_file_info(posixpath.join(root, schema.TRIALS_DIR)).type == pafs.FileType.Directory:
            notes.append(f"{location}: {schema.TRIALS_DIR}/ holds no trial file; read from {schema.TRIALS_FILE} "
                         "(the consolidated tables; a sweep run here restores the trial files from them)")
        trials, version, contract_t = read_checked(fs, posixpath.join(root, schema.TRIALS_FILE), "trials")
        metrics, _, _ = read_checked(fs, posixpath.join(root, schema.METRICS_FILE), "metrics")
        contract = contract or contract_t
        contract = {**contract, "labelled": schema.labelled_of(contract, contract_t)}  # else as the tables say
        if version == "1":
            parsed = _study_yaml(study, posixpath.join(root, schema.STUDY_FILE))
            trials = upgrade.v1_trials(trials, parsed)
            contract = upgrade.v1_contract(parsed)
            notes.append(f"{location}: schema version 1, read through the v1 shim (steps_done from v1's "
                         "`iterations`; configured iterations recovered from status and the study's budget)")
        if version != schema.SCHEMA_VERSION:
            trials = upgrade.v2_frame(trials, contract.get("labelled"))
            metrics = upgrade.v2_frame(metrics, contract.get("labelled"))
        trials, metrics, twice = once_each(trials, metrics)
        if twice:
            notes.append(f"{location}: left out {len(twice)} trial(s) the tables record twice (a trial or a step "
                         f"repeated), as neither copy can be told for its own: {', '.join(twice[:5])}"
                         + (" ..." if len(twice) > 5 else ""))
    if skipped:
        notes.append(f"{location}: skipped error record(s) that are not readable records: {', '.join(skipped)}")
    if not contract and len(trials):  # every folder a driver wrote has one before its first trial (a report crashed)
        raise ResultsError(f"{subfolder(location, schema.CONTRACT_FILE)}: missing, and the tables carry none; "
                           "it declares the axes and keys the rows are read by (run the study again into this folder "
                           "to write it)")
    source = {"location": location, "study": study, "versions": versions}
    contract = declared_keys(upgrade.contract_v3(contract), [*trials.columns, *metrics.columns])
    return trials, metrics, {**source, "contract": contract}, notes
