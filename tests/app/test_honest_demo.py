"""Issue 19 (Train / Evaluate / Data): honest comparisons, one colour per model, friendly and safe run management,
time estimates, escaped upload messages and atomic extraction. Library functions and tab handlers, no browser."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest

from sicsrec.app.studio import READY_MARK, AppConfig, Studio
from sicsrec.eval.results import METRICS, ModelResult, Results
from sicsrec.eval.seeds import (
    BENCHMARK_SCHEMA,
    GAIN,
    LOSS,
    ONE_SEED,
    WITHIN_NOISE,
    benchmark_lines,
    read_benchmark,
    run_lines,
    user_noise,
    verdict,
)
from sicsrec.eval.stats import summarise
from tests.app.helpers import ROOT


def _results(values: dict[str, float], users: int = 610) -> Results:
    """A results.json with each model's every test metric equal to `values[model]`."""
    models = {m: ModelResult(dict.fromkeys(METRICS, v), dict.fromkeys(METRICS, v)) for m, v in values.items()}
    return Results("toy", {"users": users, "test": users}, "cpu", models=models)


# --- noise and verdicts -------------------------------------------------------------------------


def test_verdict_reads_the_interval() -> None:
    assert verdict(-0.01, 0.02, 5) == WITHIN_NOISE
    assert verdict(0.01, 0.02, 5) == GAIN and verdict(-0.03, -0.01, 5) == LOSS
    assert verdict(0.01, 0.02, 1) == ONE_SEED  # beyond user noise, but one seed shows no gain
    assert verdict(math.nan, math.nan, 3) == WITHIN_NOISE


def test_user_noise_bounds_a_binary_metric() -> None:
    # HR is a proportion: its standard error is exactly sqrt(p(1-p)/n); the bound must reach it
    p, n = 0.1, 600
    assert user_noise(p, 0.0, n) == pytest.approx(1.96 * math.sqrt(p * (1 - p) / n))
    assert user_noise(0.1, 0.1, n) > user_noise(0.1, 0.0, n)
    assert math.isnan(user_noise(0.1, 0.1, 0))


def test_a_single_run_is_one_seed_and_a_tiny_gap_is_noise() -> None:
    # the shipped demo's case: SICSRec 0.0434 vs SASRec 0.0436 on 610 users is no difference at all
    lines = run_lines(_results({"pop": 0.012, "sasrec": 0.0436, "sicsrec": 0.0434}))
    assert [line.metric for line in lines] == list(METRICS)
    assert all(line.verdict == WITHIN_NOISE and line.seeds == 1 and line.low < 0 < line.high for line in lines)
    assert all(line.floor == 0.012 and line.above_floor for line in lines)


def test_two_models_at_popularity_level_show_no_gain() -> None:
    # a two-epoch run: "+26.6% vs SASRec" while both sit at the popularity floor
    lines = run_lines(_results({"pop": 0.0119, "sasrec": 0.0120, "sicsrec": 0.0152}))
    assert lines[0].gain == pytest.approx(0.0152 / 0.0120 - 1)
    assert all(line.verdict == WITHIN_NOISE and not line.above_floor for line in lines)
    from sicsrec.app.tabs.evaluate import line_html

    assert "SICSRec at popularity level" in line_html(lines[0])  # the badge names the model it is about


def test_a_large_gap_on_many_users_is_still_one_seed() -> None:
    lines = run_lines(_results({"pop": 0.01, "sasrec": 0.05, "sicsrec": 0.10}, users=20_000))
    assert all(line.verdict == ONE_SEED for line in lines)
    assert run_lines(_results({"pop": 0.01, "sasrec": 0.05})) == []  # no SICSRec: nothing to compare


def _bench(gains: list[float], floor: float = 0.01) -> dict:
    """A benchmark report of one dataset whose SICSRec gains per seed are `gains` (as bench/quality.py writes)."""
    seeds = list(range(2025, 2025 + len(gains)))
    base = [0.10] * len(gains)
    mine = [b * (1 + g) for b, g in zip(base, gains)]
    summary = lambda v: {"test": {k: summarise(v).to_dict() for k in METRICS}}
    models = {"pop": summary([floor] * len(gains)), "sasrec": summary(base), "sicsrec": summary(mine)}
    gain = {"over": "sasrec", **summarise(gains).to_dict()}
    return {
        "schema": BENCHMARK_SCHEMA,
        "datasets": {
            "toy": {
                "seeds": seeds,
                "dataset": "Toy",
                "models": models,
                "gains": {k: {"best": gain, "sasrec": gain} for k in METRICS},
            }
        },
    }


def test_benchmark_lines_carry_seed_intervals_and_the_floor() -> None:
    (clear,) = benchmark_lines(_bench([0.08, 0.09, 0.10, 0.085, 0.095]))
    assert clear.dataset == "Toy" and len(clear.seeds) == 5
    assert all(line.verdict == GAIN and line.floor == 0.01 and line.above_floor for line in clear.lines)
    assert all(line.low > 0 and not math.isnan(line.model_std) for line in clear.lines)
    (noisy,) = benchmark_lines(_bench([0.08, -0.05, 0.02]))
    assert all(line.verdict == WITHIN_NOISE for line in noisy.lines)


def test_the_benchmark_puts_the_demo_s_own_data_first_and_says_it_in_a_sentence() -> None:
    from sicsrec.app.tabs.evaluate import benchmark_html

    report = _bench([0.08, 0.09, 0.10, 0.085, 0.095])
    noisy = _bench([-0.08, 0.02, -0.05])["datasets"]["toy"]
    report["datasets"]["ml"] = {**noisy, "dataset": "movielens_small_posters"}
    html = benchmark_html(benchmark_lines(report), "movielens-demo")
    assert "has no multi-seed run of its own" in html and "measured on the same ratings" in html
    assert html.index("MovieLens-small + posters") < html.index("<b>Toy</b>")  # the demo's data first
    assert "SICSRec and SASRec (behavior only) are level within the noise on NDCG@5" in html
    assert "SICSRec ranks the next item higher than SASRec (behavior only) on NDCG@5" in html
    assert "has no multi-seed run" not in benchmark_html(benchmark_lines(report), "Toy")
    assert "no multi-seed run of other-data" in benchmark_html(benchmark_lines(report), "other-data")


def test_the_shipped_benchmark_file_reads(tmp_path: Path) -> None:
    report = read_benchmark(ROOT / "bench" / "results" / "quality.json")
    assert report is not None
    entries = benchmark_lines(report)
    assert entries and all(len(e.lines) == len(METRICS) for e in entries)
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something else"}))
    (tmp_path / "torn.json").write_text('{"schema": ')
    assert read_benchmark(tmp_path / "other.json") is None and read_benchmark(tmp_path / "torn.json") is None
    assert read_benchmark(tmp_path / "absent.json") is None


def test_evaluate_says_one_seed_and_shows_the_benchmark(studio: Studio) -> None:
    from sicsrec.app.tabs.evaluate import EvaluateTab

    _summary, lines, table, fig, bench = EvaluateTab(studio).show("")
    assert "one seed" in lines and "cannot show a gain reliably" in lines and "popularity floor" in lines
    assert lines.count('class="sr-metric-line"') == len(METRICS)
    assert "Benchmark over seeds" in bench and "sr-badge" in bench
    numbers = [v for c in table.columns[1:6] for v in table[c]]
    assert all(len(v.split(".")[1]) == 3 for v in numbers)  # 3 decimals, 0.030 not 0.03
    assert any(t.error_y.array is not None and any(t.error_y.array) for t in fig.data)


# --- one colour per model -----------------------------------------------------------------------


def test_a_model_has_one_colour_in_curves_and_metrics() -> None:
    from sicsrec.app.plots import MODEL_COLOURS, metrics_figure, model_colour, training_figure
    from sicsrec.events import EpochEvent, StepEvent

    # content trains first here: the colour follows the model, not the order
    events = [
        StepEvent(stage, 1, 1, 1, 1.0, t=n) for n, stage in enumerate(("content", "sasrec", "sicsrec step 2"))
    ] + [
        EpochEvent(stage, 1, 1, {"ce": 1.0}, {"hr@10": 0.1, "ndcg@10": 0.05}, 1, 1.0, t=10 + n)
        for n, stage in enumerate(("content", "sasrec", "sicsrec step 2"))
    ]
    curves = {t.name: t.line.color for t in training_figure(events).data}
    bars = {
        t.name: t.marker.color
        for t in metrics_figure(_results({"pop": 0.01, "sasrec": 0.05, "content": 0.04, "sicsrec": 0.06})).data
    }
    assert curves["SASRec (behavior only) · HR@10"] == bars["SASRec (behavior only)"] == MODEL_COLOURS["sasrec"]
    assert curves["content-only · loss"] == bars["content-only"] == MODEL_COLOURS["content"]
    assert curves["SICSRec step 2 · NDCG@10"] == bars["SICSRec"] == MODEL_COLOURS["sicsrec"]
    assert model_colour("unknown") == model_colour("") != MODEL_COLOURS["sicsrec"]


# --- runs: friendly names, rename, delete -------------------------------------------------------


def _run(workdir: Path, folder: str = "20261203-051200", hidden: int = 32, epochs: int = 2) -> Path:
    """A run folder with a results.json (no model)."""
    out = workdir / folder
    (out / "checkpoints").mkdir(parents=True)
    Results("movielens-demo", config={"model_cfg": {"hidden": hidden}, "train": {"max_epochs": epochs}}).write(
        out / "results.json"
    )
    return out


def test_runs_get_friendly_names_and_can_be_renamed(tmp_path: Path) -> None:
    from sicsrec.app.runs import RunError, rename_run, run_label, run_name

    work = tmp_path / "runs"
    out = _run(work)
    assert run_name(out, Results.read(out)) == "movielens-demo · d32 · ≤2 epochs/stage · 12-03 05:12"
    assert rename_run(str(out), "  lecture   3 ", work) == "lecture 3"
    assert run_label(out, Results.read(out)).startswith("lecture 3")
    for bad in ("", "   ", "x" * 61, "bell\x07"):
        with pytest.raises(RunError):
            rename_run(str(out), bad, work)


def test_delete_touches_only_runs_of_the_runs_folder(tmp_path: Path) -> None:
    from sicsrec.app.runs import LoadedRun, RunError, delete_run, run_choices

    work = tmp_path / "runs"
    keep, gone, shipped = _run(work, "20260101-000000"), _run(work, "20260102-000000"), _run(tmp_path, "demo")
    outside = tmp_path / "precious"
    outside.mkdir()
    (work / "link").symlink_to(outside)
    for folder in (str(outside), str(work / "link"), str(work / ".." / "precious"), str(shipped), str(work), ""):
        with pytest.raises(RunError):
            delete_run(folder, work)
    with pytest.raises(RunError, match="shipped demo"):
        delete_run(str(keep), work, protected=(keep,))
    assert delete_run(str(gone), work).startswith("movielens-demo")
    assert not gone.exists() and keep.is_dir() and outside.is_dir() and shipped.is_dir()
    assert not list(work.glob(".deleting-*"))
    # a delete cut short leaves a hidden folder: never listed as a run
    (work / ".deleting-x" / "checkpoints").mkdir(parents=True)
    values = [v for _, v in run_choices(LoadedRun("default", None), work, shipped)]  # type: ignore[arg-type]
    assert values == ["", str(keep)]


def test_train_tab_renames_and_deletes_the_selected_run(studio: Studio) -> None:
    from sicsrec.app.tabs.train import TrainTab

    train = TrainTab(studio)
    out = _run(studio.config.workdir, "20261203-060000")
    message, runs = train.rename(str(out), "for the lecture")
    assert "for the lecture" in message and any(str(label).startswith("for the lecture") for label, _ in runs.choices)
    assert train.rename("", "x")[0].startswith("Pick one of your training runs")
    assert "Nothing deleted" in train.delete("")[0]  # the page's confirm was declined, or the default run
    message, runs = train.delete(str(out))
    assert message.startswith("Deleted run") and not out.exists() and str(out) not in [v for _, v in runs.choices]
    assert str(studio.config.workdir) not in message


# --- time estimate and presets ------------------------------------------------------------------


def test_estimate_grows_with_work_and_counts_step_one() -> None:
    from sicsrec.app.jobs import estimate_seconds

    small = estimate_seconds(100_000, 600, ("sasrec",), 32, 2)
    assert small.prepare > 0 and small.train > 0 and small.total == small.prepare + small.train
    assert 1.5 * small.train < estimate_seconds(100_000, 600, ("sasrec",), 32, 4).train < 2 * small.train
    assert estimate_seconds(100_000, 600, ("sasrec",), 256, 2).train > small.train
    assert estimate_seconds(200_000, 600, ("sasrec",), 32, 2).total > small.total
    alone = estimate_seconds(100_000, 600, ("sicsrec",), 32, 2)
    both = estimate_seconds(100_000, 600, ("sasrec", "sicsrec"), 32, 2)
    assert alone.train == both.train > small.train  # SICSRec's step 2 needs SASRec's step 1 anyway


def _timed_job(tmp_path: Path, speed: float, overhead: float, cancelled: bool = False, encoded: bool = False):
    """A finished SASRec + SICSRec job of 3 epochs each whose epochs took `speed` x the reference and whose models
    cost `overhead` s each outside their epochs (its events as a real job reports them)."""
    from sicsrec.app.jobs import TrainJob, estimate_seconds
    from sicsrec.config import RunConfig
    from sicsrec.events import PHASE_PREPARE, PHASE_TRAIN, EpochEvent, FeatureProgress, PhaseEvent
    from sicsrec.run.experiment import ExperimentResult

    est = estimate_seconds(100_000, 600, ("sasrec", "sicsrec"), 32, 3)
    job = TrainJob(RunConfig(), ("sasrec", "sicsrec"), tmp_path / "20261203-120000", device="cpu", estimate=est)
    job.events += [PhaseEvent(PHASE_PREPARE, t=100.0), PhaseEvent(PHASE_TRAIN, t=100.0 + 3 * est.prepare_ref)]
    if encoded:
        job.events.insert(1, FeatureProgress("text", 10, 100))
    spent = 0.0
    for stage, model in (("sasrec", "sasrec"), ("sicsrec step 2", "sicsrec")):
        for epoch in (1, 2, 3):
            seconds = speed * est.epoch_ref[model]
            spent += seconds
            job.events.append(EpochEvent(stage, epoch, 3, {}, {"hr@10": 0.1}, epoch, seconds))
    job.finished = 100.0 + 3 * est.prepare_ref + spent + 2 * overhead
    job.result = ExperimentResult(Results("toy", {}, "cpu", cancelled=cancelled))
    return job


def test_a_finished_job_scales_the_next_estimate_to_this_machine(tmp_path: Path) -> None:
    from sicsrec.app.jobs import Calibration, estimate_seconds, measure

    job = _timed_job(tmp_path, speed=2.5, overhead=7.0)
    cal = measure(job)
    assert cal is not None and cal.measured
    assert cal.epoch == pytest.approx(2.5) and cal.prepare == pytest.approx(3.0) and cal.overhead == pytest.approx(7.0)
    job.calibrate()  # what the job's thread does when it ends
    assert Calibration.read(tmp_path, "cpu") == cal and Calibration.read(tmp_path, "cuda") == Calibration()
    ref = estimate_seconds(100_000, 600, ("sasrec", "sicsrec"), 32, 10)
    scaled = estimate_seconds(100_000, 600, ("sasrec", "sicsrec"), 32, 10, cal)
    assert scaled.prepare == pytest.approx(3 * ref.prepare)
    assert scaled.train == pytest.approx(2.5 * 10 * sum(ref.epoch_ref.values()) + 2 * 7.0)
    # a cancelled job says nothing about the fixed costs; a first encoding of the features nothing about preparing
    partial = measure(_timed_job(tmp_path, speed=2.0, overhead=50.0, cancelled=True, encoded=True))
    assert partial is not None and partial.epoch == pytest.approx(2.0)
    assert partial.overhead == Calibration().overhead and partial.prepare == Calibration().prepare


def test_unreadable_or_absurd_timings_fall_back_to_the_reference(tmp_path: Path) -> None:
    from sicsrec.app.jobs import TIMINGS, Calibration

    assert Calibration.read(tmp_path, "cpu") == Calibration()  # no file yet
    for bad in (
        "{not json",
        '{"cpu": {"epoch": "fast"}}',
        '{"cpu": {"epoch": 1e9, "prepare": 1, "overhead": 1, "measured": "x"}}',
        "[]",
    ):
        (tmp_path / TIMINGS).write_text(bad)
        assert Calibration.read(tmp_path, "cpu") == Calibration()
    Calibration(2.0, 1.5, 3.0, "2026-12-03 12:00").save(tmp_path, "cuda")  # replaces the broken file
    assert Calibration.read(tmp_path, "cuda").epoch == 2.0 and Calibration.read(tmp_path, "cpu") == Calibration()


@pytest.mark.slow
def test_quick_demo_preset_is_estimated_near_a_minute(studio: Studio) -> None:
    from sicsrec.app.jobs import TIMINGS, Calibration
    from sicsrec.app.tabs.train import PRESET_FIELDS, PRESETS, TrainForm, TrainTab

    timings = studio.config.workdir / TIMINGS
    timings.unlink(missing_ok=True)  # the reference timings: no job of another test has measured this machine
    train = TrainTab(studio)
    quick = TrainForm("demo", **dict(zip(PRESET_FIELDS, train.preset("Quick demo (~1 min)"))))
    paper = TrainForm("demo", **dict(zip(PRESET_FIELDS, train.preset("Paper settings"))))
    fast, slow = train.estimate(quick), train.estimate(paper)
    assert fast is not None and slow is not None and 20 < fast.total < 120 < slow.total
    text = train.estimate_text(quick)
    assert "Estimated time" in text and "From reference timings" in text
    Calibration(3.0, 2.0, 4.0, "2026-12-03 12:00").save(studio.config.workdir, "cpu")  # as a finished job does
    scaled = train.estimate(quick)
    assert scaled is not None and scaled.total > 2 * fast.total
    assert "measured on its last training job (2026-12-03 12:00: 3.0×" in train.estimate_text(quick)
    timings.unlink()
    assert set(PRESETS) == {"Quick demo (~1 min)", "Paper settings"}


def test_the_chosen_preset_is_marked_until_a_field_changes() -> None:
    from sicsrec.app.tabs.train import CHOSEN, PRESET_FIELDS, PRESETS, QUICK, TrainForm, preset_buttons_shown

    paper = "Paper settings"
    form = TrainForm("demo", **{f: PRESETS[paper][f] for f in PRESET_FIELDS})
    form.hidden = float(form.hidden)  # Gradio's numbers arrive as floats
    assert preset_buttons_shown(form) == [QUICK, CHOSEN + paper]
    form.stages = list(reversed(form.stages))  # order of ticks does not matter
    assert preset_buttons_shown(form) == [QUICK, CHOSEN + paper]
    form.epochs = 7
    assert preset_buttons_shown(form) == [QUICK, paper]


# --- progress, messages without server paths ----------------------------------------------------


def test_preparation_is_shown_and_no_server_path_is(tmp_path: Path) -> None:
    from sicsrec.app.jobs import Estimate, TrainJob
    from sicsrec.app.tabs.train import status_text
    from sicsrec.config import RunConfig
    from sicsrec.events import PHASE_PREPARE, PHASE_TRAIN, PhaseEvent

    job = TrainJob(RunConfig(), ("sasrec",), tmp_path / "20261203-051200", device="cpu", estimate=Estimate(20, 40))
    job.events.append(PhaseEvent(PHASE_PREPARE))
    text = status_text(job)
    assert "Preparing" in text and "of ≈ 0:20 estimated" in text and str(tmp_path) not in text
    job.events.append(PhaseEvent(PHASE_TRAIN))
    assert "prepared in" in status_text(job) and str(tmp_path) not in status_text(job)


@pytest.mark.slow
def test_the_cancelling_line_is_cleared_once_the_job_ended(studio: Studio, slice_dir: Path) -> None:
    from sicsrec.app.tabs.train import STAGES, TrainForm, TrainTab

    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    form = TrainForm("slice", [s for s, m in STAGES.items() if m == "sasrec"], hidden=16, epochs=50, batch=512)
    message, _ = train.start_job(form)
    assert message.startswith("Started") and str(studio.config.workdir) not in message
    assert "Cancelling" in train.cancel()
    job = studio.job
    assert job is not None and job.thread is not None
    job.thread.join(150)
    assert train.poll()[5] == ""  # the message line is cleared
    assert str(studio.config.workdir) not in train.poll()[0]


# --- data tab -----------------------------------------------------------------------------------


def test_unrecognised_upload_message_is_escaped_and_complete(studio: Studio, tmp_path: Path) -> None:
    from sicsrec.app.tabs.data import LAYOUTS, DataTab, plain

    assert plain("<name>.inter + *_item.csv") == "&lt;name&gt;.inter + \\*\\_item.csv"
    wrong = tmp_path / "mystery.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("mine/ratings.dat", "1::2::5::3\n")
        zf.writestr("mine/notes_v2.txt", "x")
    report = DataTab(studio).upload(str(wrong))[0]
    assert "&lt;name&gt;.inter" in report and "ratings.dat" in report and "notes\\_v2.txt" in report
    assert str(studio.config.uploads) not in report and ".tmp-" not in report
    assert "listed above" in report and "fewer than **5 interactions**" in LAYOUTS  # the per-user minimum
    assert not list(studio.config.uploads.glob("*mystery*")) and not list(studio.config.uploads.glob(".*"))


def test_good_upload_shows_a_before_after_table(studio: Studio, slice_zip: Path) -> None:
    from sicsrec.app.tabs.data import DataTab

    report, _, choices = DataTab(studio).upload(str(slice_zip))
    assert "| | read | kept after cleaning | dropped |" in report
    assert "| users |" in report and "| interactions |" in report
    mark = json.loads((studio.config.uploads / choices.value / READY_MARK).read_text())
    assert Path(mark["root"]).is_relative_to(
        studio.config.uploads / choices.value
    )  # the final folder, not the temp one
    assert Path(studio.datasets[choices.value]).is_dir()


def test_a_killed_extraction_is_never_offered(tmp_path: Path, run_dir: Path) -> None:
    uploads = tmp_path / "runs" / "uploads"
    half = uploads / ".slice-1234abcd.tmp-xyz"  # what atomic_dir leaves when the process dies mid-extraction
    half.mkdir(parents=True)
    (half / READY_MARK).write_text(json.dumps({"root": str(half)}))
    studio = Studio(AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    assert set(studio.datasets) == {"demo"}


# --- shell: status line -------------------------------------------------------------------------


def test_status_line_shows_the_version_and_the_fallbacks(studio: Studio) -> None:
    from sicsrec import __version__
    from sicsrec.app.shell import status_html

    line = status_html(studio)
    assert f"v{__version__}" in line
    assert "posters" in line  # no --images here: drawn cards are a fallback, and said so


def test_real_covers_are_shown_when_given(tmp_path: Path, run_dir: Path) -> None:
    from PIL import Image

    covers = tmp_path / "covers"
    covers.mkdir()
    plain = Studio(AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    cat = plain.default.catalogue
    Image.new("RGB", (60, 90), "navy").save(covers / f"{cat.item_ids[0]}.png")
    studio = Studio(
        AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache2", images=covers)
    )
    assert Path(studio.thumbs.path(cat, 0)).name.startswith("real-")  # the cover, resized
    assert not Path(studio.thumbs.path(cat, 1)).name.startswith("real-")  # no cover: a drawn card
    assert not any("posters" in f for f in studio.fallbacks()) and any("posters" in f for f in plain.fallbacks())


def test_the_curves_are_built_once_for_every_session_polling_a_job(studio: Studio, tmp_path: Path) -> None:
    """Each page open during a job polls every second: the figure is shared, rebuilt when an epoch ends."""
    from sicsrec.app.jobs import TrainJob
    from sicsrec.app.tabs.train import TrainTab
    from sicsrec.config import RunConfig
    from sicsrec.events import EpochEvent, StepEvent

    tab = TrainTab(studio)
    job = TrainJob(RunConfig(), ("sasrec",), tmp_path / "20261203-150000", device="cpu")
    job.events += [StepEvent("sasrec", 1, s, 10, 7.0) for s in range(1, 6)]
    first = tab.curves(job)
    job.events.append(StepEvent("sasrec", 1, 6, 10, 6.9))  # a step: the shared figure stands (for a few s)
    assert tab.curves(job) is first and tab.curves(job) is first
    job.events.append(EpochEvent("sasrec", 1, 5, {"rec": 6.9}, {"hr@10": 0.1, "ndcg@10": 0.05}, 1, 2.0))
    second = tab.curves(job)
    assert second is not first and len(second.data) > len(first.data)  # the validation curve appeared
    job.finished = 1.0  # the job ended: its final figure
    assert tab.curves(job) is not second
