"""User text cannot reach outside its place (issue 34): an axis label holding `../` never leads a
writer out of the results folder (TensorBoard, tracking, samples, the report, its figures, an
export), and a study's text cannot close the Markdown block that shows it."""

import re

import pytest
from click.testing import CliRunner

from analysis.report import build_report
from analysis.synthetic import synthetic_results
from analysis.tables import md_escape
from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.data.datasets import DATASETS, DatasetSpec
from vi_sweeps.track import spec as tracking

ESCAPE = "../../../../../escaped"
STUDY = f"""
name: labels
base: {{hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}}
grid:
  regime:
    '{ESCAPE}': {{bn: true}}
    '..\\..\\win': {{bn: false}}
seeds: 1
budget: {{iterations: 4, eval_every: 2}}
"""


def every_file(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.skipif(not tracking.installed("mlflow"), reason="the [track] extra is not installed")
def test_labels_holding_dot_dot_stay_inside_the_results_folder_under_every_writer(tmp_path, monkeypatch):
    """Before: with --tensorboard, the label ../../../../../escaped wrote TensorBoard's event files
    to escaped/seed0 beside the results folder."""
    monkeypatch.chdir(tmp_path)  # a writer that used the current folder would show here too
    (tmp_path / "study.yaml").write_text(STUDY)
    r = CliRunner().invoke(main, ["run", "study.yaml", "--results", "results", "--tensorboard", "--track", "mlflow"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", "results", "--to", "export"])
    assert r.exit_code == 0, r.output
    outside = [p for p in every_file(tmp_path) if not p.startswith(("results/", "export/")) and p != "study.yaml"]
    assert outside == []
    runs = {p.split("/")[1] for p in every_file(tmp_path / "results" / "tensorboard")}
    assert runs == {"model=gan,dataset=ring8,regime=.._.._.._.._.._escaped", "model=gan,dataset=ring8,regime=.._.._win"}
    assert (tmp_path / "results" / "tracking" / "mlflow.db").exists()
    assert (tmp_path / "results" / "report" / "REPORT.md").exists() and len(every_file(tmp_path / "export" / "samples")) == 4


@pytest.mark.usefixtures("isolated_plugins")
@pytest.mark.parametrize("name", ["../up", "a/b", "a\\b", ".hidden"])
def test_a_registered_name_cannot_be_a_path(name):
    """Registered names become parts of paths (Ray's trial folders, TensorBoard's runs)."""
    with pytest.raises(ValueError, match="no / or"):
        DATASETS.register(name, spec=DatasetSpec("vector", "mixture"))


DESCRIPTION = "the plan\n```\n<img src=x onerror=alert(1)>\n`````\n"


@pytest.mark.slow
def test_a_study_s_text_cannot_close_its_markdown_block(tmp_path):
    """Before: a `description:` holding a ``` line closed REPORT.md's ```yaml block, and the
    <img> after it was raw HTML."""
    folder = tmp_path / "r"
    synthetic_results(folder, {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=3)
    text = "name: synthetic\ndescription: |\n" + "".join(f"  {line}\n" for line in DESCRIPTION.splitlines())
    (folder / schema.STUDY_FILE).write_text(text)
    md = build_report([str(folder)], str(tmp_path / "rep")).read_text()
    opening = re.search(r"^(`{3,})yaml$", md, re.M)
    fence = opening.group(1)
    closing = re.compile(rf"^{fence}`*\s*$", re.M).search(md, opening.end())  # CommonMark: as long or longer
    assert len(fence) == 6 and md[opening.end():closing.start()].strip() == text.strip()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html


def test_a_code_span_that_markdown_does_not_read_as_one_is_escaped():
    """Before: md_escape left `<img ...>`` alone as a code span, which Markdown does not read
    as one (the closing run is two backticks): raw HTML."""
    assert "<img" not in md_escape("`<img src=x onerror=alert(1)>``")
    assert "<b>" not in md_escape("\\`<b>`") and md_escape("a `<b>` c") == "a `<b>` c"
