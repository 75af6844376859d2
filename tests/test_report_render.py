"""Report rendering from fixture notebook runs: files, merged metrics, RESULTS.md, byte-identical re-render."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lib.config import REPO_ROOT, compose
from lib.io import read_json, write_json
from lib.report.metrics import check_metrics_schema, merge_run_metrics
from lib.report.render import render
from lib.runner import run_notebook

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "notebooks"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    run_notebook("fx_produce", "smoke", ["seed=2", "+extra.scale=0.5"], run_dir=root / "01_fx_produce",
                 notebook_dir=FIXTURES)
    run_notebook("fx_consume", "smoke", [f"+paths.fx_input={root / '01_fx_produce'}"],
                 run_dir=root / "02_fx_consume", notebook_dir=FIXTURES)
    (root / "sweeps").mkdir()  # not a notebook run folder: ignored
    return root


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_writes_every_artefact_and_is_byte_identical(results, tmp_path):
    out = tmp_path / "paper"
    done = render(compose("smoke"), results, out)
    assert sorted(digest(out)) == ["RESULTS.md", "figures/fx_line_figure.pdf", "figures/fx_line_figure.png",
                                   "index.json", "metrics.json", "tables/fx_line_table.md",
                                   "tables/fx_line_table.tex"]
    metrics = read_json(out / "metrics.json")
    wall = [read_json(results / n / "manifest.json")["wall_time_s"] for n in ("01_fx_produce", "02_fx_consume")]
    # value = 0.5 * (seed 2 + 1); consume doubles it
    assert metrics["fx.value"] == 1.5 and metrics["fx.doubled"] == 3.0
    assert metrics["walltime.01_fx_produce_s"] == wall[0] and metrics["walltime.02_fx_consume_s"] == wall[1]
    assert metrics["walltime.study_s"] == pytest.approx(sum(wall))
    assert done.metrics == metrics
    table_md = (out / "tables" / "fx_line_table.md").read_text()
    assert "1.5" in table_md and "mean" in table_md
    tex = (out / "tables" / "fx_line_table.tex").read_text()
    assert "\\caption{A straight line through the origin." in tex and "\\label{tab:fx_line_table}" in tex
    page = (out / "RESULTS.md").read_text()
    for needle in ("# Results (smoke preset)", "### fx_line_table", "### fx_line_figure",
                   "Its slope is the seed plus one.", "figures/fx_line_figure.png", "| 01_fx_produce | ok |",
                   "CPU cores", read_json(results / "01_fx_produce" / "manifest.json")["git"]["sha"][:12]):
        assert needle in page
    first = digest(out)
    render(compose("smoke"), results, out)
    assert digest(out) == first


def copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if path.is_file():
            (dst / path.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / path.relative_to(src)).write_bytes(path.read_bytes())


def test_notebook_without_local_results_is_carried_from_the_previous_render(results, tmp_path):
    out = tmp_path / "paper"
    render(compose("smoke"), results, out)
    full = digest(out)
    full_page = (out / "RESULTS.md").read_text()
    # a machine with only notebook 02's results (a fresh clone next to the committed paper folder)
    partial = tmp_path / "partial"
    copy_tree(results / "02_fx_consume", partial / "02_fx_consume")
    done = render(compose("smoke"), partial, out)
    assert done.carried == ["01_fx_produce"]
    after = digest(out)
    for kept in ("tables/fx_line_table.md", "tables/fx_line_table.tex", "figures/fx_line_figure.png",
                 "figures/fx_line_figure.pdf", "metrics.json"):
        assert after[kept] == full[kept], kept  # files and every number unchanged
    page = (out / "RESULTS.md").read_text()
    assert "Carried from the previous render" in page and "01_fx_produce" in page
    assert "| 01_fx_produce | ok | earlier render (`index.json`) |" in page
    assert "| 02_fx_consume | ok | `results/smoke/02_fx_consume` |" in page
    # the carried table keeps its inline Markdown, and every section of the full page is still there
    section = full_page[full_page.index("## Headline numbers"):]
    assert section in page
    # with every run back, the render is the full one again
    render(compose("smoke"), results, out)
    assert digest(out) == full


def test_carried_artefact_whose_file_is_gone_fails_naming_it(results, tmp_path):
    out = tmp_path / "paper"
    render(compose("smoke"), results, out)
    (out / "figures" / "fx_line_figure.png").unlink()
    partial = tmp_path / "partial"
    copy_tree(results / "02_fx_consume", partial / "02_fx_consume")
    with pytest.raises(FileNotFoundError, match="fx_line_figure.png is missing and 01_fx_produce has no results"):
        render(compose("smoke"), partial, out)
    with pytest.raises(FileNotFoundError, match="no results in .* and no earlier render"):
        render(compose("smoke"), tmp_path / "nothing", tmp_path / "empty_paper")


def test_stale_outputs_are_removed_and_duplicate_names_refused(results, tmp_path):
    out = tmp_path / "paper"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "gone.md").write_text("old")
    render(compose("smoke"), results, out)
    assert not (out / "tables" / "gone.md").exists()
    copy = tmp_path / "dup"
    for name in ("01_fx_produce", "03_fx_again"):
        copy_tree(results / "01_fx_produce", copy / name)
    with pytest.raises(ValueError, match="fx_line_(table|figure).* registered by both 01_fx_produce and 03_fx_again"):
        render(compose("smoke"), copy, tmp_path / "paper_dup")


def full_metrics() -> dict[str, float]:
    return {
        "nextitem.beauty.sasrec.hr@10": 0.1, "nextitem.beauty.sasrec.ndcg@10": 0.05,
        "ate.semisynth_beauty.none.naive.abs_bias": 0.4, "ate.semisynth_beauty.bag_svd.linear_dml.abs_bias": 0.1,
        "ate.semisynth_beauty.bag_svd.linear_dml.rel_bias": 0.1,
        "ate.semisynth_beauty.bag_svd.linear_dml.coverage": 0.9,
        "rct_gap.hillstrom.visit.raw.linear_dml.abs_error": 0.01, "rct_gap.hillstrom.visit.naive.abs_error": 0.03,
        "uplift.hillstrom.visit.t_learner.qini": 0.02, "uplift.hillstrom.visit.t_learner.auuc": 0.03,
        "uplift.hillstrom.visit.random.qini": 0.0, "uplift.hillstrom.visit.random.auuc": 0.0,
        "uplift.hillstrom.visit.womens_email.t_learner.qini_p": 0.01,
        "walltime.01_prepare_data_s": 12.0,
    }


def test_check_metrics_schema_flags_missing_families():
    assert check_metrics_schema(full_metrics()) == []
    no_uplift = {k: v for k, v in full_metrics().items() if not k.startswith("uplift.")}
    assert check_metrics_schema(no_uplift) == ["uplift.hillstrom.*.*.qini", "uplift.hillstrom.*.*.auuc",
                                               "uplift.hillstrom.*.random.qini", "uplift.hillstrom.*.*.*.qini_p"]
    no_naive = {k: v for k, v in full_metrics().items() if ".naive." not in k}
    assert check_metrics_schema(no_naive) == ["ate.*.none.naive.abs_bias", "rct_gap.hillstrom.*.naive.abs_error"]
    # a key with a missing segment does not count for its family
    broken = {k: v for k, v in full_metrics().items() if not k.startswith("nextitem.")}
    broken["nextitem.beauty.hr@10"] = 0.1
    assert check_metrics_schema(broken)[:1] == ["nextitem.*.*.hr@10"]


def test_merge_refuses_conflicting_values(tmp_path):
    for name, value in (("01_a", 1.0), ("02_b", 2.0)):
        write_json(tmp_path / name / "metrics.json", {"ate.x.y.z.abs_bias": value})
    with pytest.raises(ValueError, match="reported by both 01_a"):
        merge_run_metrics({"01_a": tmp_path / "01_a", "02_b": tmp_path / "02_b"})


def test_damaged_index_fails_naming_the_file_and_the_fix(results, tmp_path):
    out = tmp_path / "paper"
    render(compose("smoke"), results, out)
    index = read_json(out / "index.json")
    del index["notebooks"]["01_fx_produce"]["metrics"]
    write_json(out / "index.json", index)
    with pytest.raises(ValueError, match=r"index.json: notebook records \['01_fx_produce'\] lack .*make paper"):
        render(compose("smoke"), tmp_path / "nothing", out)
    (out / "index.json").write_text("{truncated")
    with pytest.raises(ValueError, match="index.json is not valid JSON"):
        render(compose("smoke"), tmp_path / "nothing", out)
