"""SICSRec Studio, the Gradio app: `python app.py [--data demo] [--checkpoint DIR] [--images DIR]`.

This file only builds the Blocks (header, run selector, one `render` per tab from `sicsrec/app/tabs/`) and launches it.
Host and port follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT unless --host / --port are given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gradio as gr

from sicsrec.app import shell
from sicsrec.app.studio import AppConfig, Studio
from sicsrec.app.tabs import data, evaluate, explore, train
from sicsrec.data import DataError
from sicsrec.utils import setup_logging

HEADER = """
<div class="sr-header">
  <h1>SICSRec Studio</h1>
  <p><b>SICSRec</b> predicts what you watch next from <i>what</i> you watched in <i>what order</i> (behavior) and
  <i>what the items are</i> (titles, genres, posters), and shows how much each side drove every recommendation.
  <a href="https://arxiv.org/abs/2510.10556" target="_blank">arXiv 2510.10556</a></p>
</div>
"""

CSS = """
.sr-header h1 { margin: 0 0 .2rem 0; font-size: 1.7rem; }
.sr-header p { margin: 0; color: var(--body-text-color-subdued); }
.sr-header { padding: .3rem 0 .6rem 0; }
.sr-pager { align-items: center; }
.sr-page-info { min-width: 12rem !important; }  /* the page count never shrinks to a letter a line */
/* Explore: card grids (gr.HTML). Cards keep one size whatever the number of cards; titles wrap in full. */
.sr-head p { margin: .4rem 0 .2rem 0; }
.sr-head-row { align-items: center; }
.sr-personas { align-items: center; gap: .5rem; }
.sr-personas-label { flex: 0 0 auto !important; width: auto !important; }
.sr-scroll { height: 640px; overflow-y: auto; padding: 2px; border: 1px solid var(--border-color-primary);
  border-radius: var(--radius-lg); }
.sr-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(92px, 1fr)); gap: 8px;
  align-items: start; }
.sr-recs { grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)); }
.sr-card { all: unset; box-sizing: border-box; display: flex; flex-direction: column; min-width: 0; cursor: pointer;
  border-radius: 8px; background: var(--block-background-fill); border: 1px solid var(--border-color-primary);
  overflow: hidden; }
.sr-card:hover { border-color: var(--color-accent); }
.sr-card:focus-visible { outline: 3px solid var(--color-accent); outline-offset: 1px; }
.sr-poster { position: relative; display: block; aspect-ratio: 2 / 3; background: #1f2937; }
.sr-poster img { width: 100%; height: 100%; object-fit: cover; display: block; }
.sr-rank { position: absolute; top: 4px; left: 4px; background: rgba(17, 24, 39, .85); color: #fff;
  font: 700 13px/1 system-ui, sans-serif; padding: 3px 6px; border-radius: 6px; }
.sr-seen { display: none; position: absolute; top: 4px; right: 4px; padding: 0 6px;  /* clear of the poster's genre */
  background: rgba(5, 150, 105, .92); color: #fff; font: 600 11px/1.4 system-ui, sans-serif; border-radius: 5px; }
.sr-cap { display: flex; flex-direction: column; gap: 3px; padding: 5px 6px 6px; font-size: 12px; line-height: 1.3;
  color: var(--body-text-color); }
.sr-title { overflow-wrap: break-word; display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 6;
  overflow: hidden; font-weight: 600; }
.sr-meta { display: flex; justify-content: space-between; gap: 4px; font-variant-numeric: tabular-nums;
  color: var(--body-text-color-subdued); font-size: 11.5px; }
.sr-move { font-weight: 700; }
.sr-up { color: #059669; } .sr-down { color: #DC2626; } .sr-new { color: #7C3AED; }
.sr-added { align-self: flex-start; background: #EDE9FE; color: #5B21B6; font-size: 10.5px; font-weight: 700;
  padding: 1px 5px; border-radius: 4px; }
.sr-attr-note { font-size: 12px; color: var(--body-text-color-subdued); margin: .3rem 0 0 0; }
.sr-bar { display: flex; height: 6px; border-radius: 3px; overflow: hidden; background: #E5E7EB; }
.sr-bar i { display: block; height: 100%; }
.sr-keys { font-size: 12px; color: var(--body-text-color-subdued); margin: .4rem 0 0 0; }
.sr-key { white-space: nowrap; }  /* a colour square never parts from its word */
.sr-key i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 3px 0 6px;
  vertical-align: -1px; }
.sr-changes { font-size: 13px; margin: 0 0 .4rem 0; }
.sr-because ol { padding-left: 2.2em; }  /* room for "10." */
.sr-empty { color: var(--body-text-color-subdued); font-style: italic; margin: .5rem 0; }
.sr-history { list-style: none; display: flex; flex-wrap: wrap; gap: 6px; margin: 0; padding: 0;
  max-height: 230px; overflow-y: auto; }
.sr-chip { display: flex; align-items: center; gap: 5px; max-width: calc(50% - 3px); padding: 2px 2px 2px 3px;
  border: 1px solid var(--border-color-primary); border-radius: 8px; background: var(--block-background-fill);
  font-size: 12px; line-height: 1.25; }
.sr-chip img { width: 20px; height: 30px; object-fit: cover; border-radius: 3px; flex: none; }
.sr-chip span { overflow-wrap: break-word; min-width: 0; display: -webkit-box; -webkit-box-orient: vertical;
  -webkit-line-clamp: 2; overflow: hidden; }  /* two lines a chip (the full title is its tooltip): five fit a phone */
.sr-chip button { all: unset; cursor: pointer; padding: 2px 7px; border-radius: 6px; font-weight: 700;
  color: var(--body-text-color-subdued); }
.sr-chip button:hover, .sr-chip button:focus-visible { background: #FEE2E2; color: #B91C1C; }
.sr-sbs { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.sr-sbs h4 { margin: 0 0 .3rem 0; font-size: 13px; }
.sr-sbs ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 4px; }
.sr-sbs li { display: flex; gap: 6px; align-items: center; font-size: 12.5px; padding: 3px; border-radius: 6px;
  border: 1px solid transparent; }
.sr-sbs li img { width: 26px; height: 39px; object-fit: cover; border-radius: 3px; flex: none; }
.sr-sbs li span { overflow-wrap: anywhere; }
.sr-sbs small { display: block; color: var(--body-text-color-subdued); }
.sr-only-one, .sr-only-key { background: #FEF3C7; border-color: #F59E0B !important; }
.sr-only-key { padding: 0 4px; border-radius: 4px; border: 1px solid; }
.sr-attr ol { list-style: none; margin: .3rem 0 0 0; padding: 0; display: flex; flex-direction: column; gap: 5px; }
.sr-attr li { display: grid; grid-template-columns: minmax(90px, 34%) 1fr 44px; gap: 8px; align-items: center;
  font-size: 12.5px; }
.sr-attr-label { overflow-wrap: anywhere; text-align: right; }
.sr-attr-track { position: relative; height: 16px; background: #F3F4F6; border-radius: 3px; }
.sr-attr-track i { position: absolute; top: 0; bottom: 0; }
.sr-attr-track b { position: absolute; top: -3px; bottom: -3px; width: 2px; margin-left: -1px; background: #374151; }
.sr-attr-track em { position: absolute; top: -1px; transform: translateX(-50%); font-style: normal; font-size: 14px;
  line-height: 16px; color: #111827; text-shadow: 0 0 2px #fff; }
.sr-attr-num { font-variant-numeric: tabular-nums; text-align: right; }
.sr-attr-head { margin: 0; }
.sr-attr-axis { display: flex; justify-content: space-between; font-size: 11.5px; margin: .3rem 0 0 0;
  padding-left: calc(34% + 8px); padding-right: 52px; color: var(--body-text-color-subdued); }
@media (max-width: 640px) {  /* phones: three cards a row (four from 480 px) */
  .sr-grid, .sr-recs { grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 6px; }
  .sr-scroll { height: 52vh; }  /* the recommendations start within a screen's scroll of the catalogue */
  .sr-pager { flex-wrap: wrap; }
  .sr-page-info { order: 3; flex: 1 1 100% !important; min-width: 0 !important; }  /* the count on its own line */
  .modebar-container { display: none; }  /* plotly's toolbar covers titles and is of little use on a phone */
  #eval-chart .textpoint { display: none; }  /* sixteen bar labels overlap at this width; the table has the values */
  .sr-attr-axis { flex-wrap: wrap; }
  .sr-attr-axis span:nth-child(2) { order: 3; flex: 1 1 100%; text-align: center; }
  .sr-grid .sr-title, .sr-sbs li span { overflow-wrap: break-word; hyphens: auto; }
  .sr-grid .sr-cap { padding: 5px 4px 6px; }  /* "Redemption," fits a three-a-row card's line whole */
  .sr-sbs { grid-template-columns: 1fr; }
  /* compact above the tabs (Explore's tour starts collapsed here too): the catalogue's first row is on the first
     screen of a phone. Gradio's gap between blocks is sized for desktops (rules in here are scoped by Gradio to
     the app's content, so this sets it on its columns). */
  .column { --layout-gap: 8px; }
  .sr-header { padding: 0 0 .3rem 0; }
  .sr-header h1 { font-size: 1.2rem; }
  .sr-header p { font-size: .78rem; line-height: 1.35; }
  .sr-status { font-size: .75rem; line-height: 1.3; }
  #k-slider [data-testid="block-info"] { font-size: 12px; }  /* "Recommendations (k)" on one line */
}
@media (min-width: 480px) and (max-width: 640px) {
  .sr-grid, .sr-recs { grid-template-columns: repeat(4, minmax(0, 1fr)); }
}
/* status line, legends, badges (Train / Evaluate / Data tabs) */
.sr-status { margin: 0; font-size: .85rem; color: var(--body-text-color-subdued); }
#sr-status { margin-top: -.75rem; }
.sr-legend { display: flex; flex-wrap: wrap; gap: .3rem 1rem; align-items: center; font-size: .9rem; }
.sr-swatch { display: inline-flex; align-items: center; gap: .35rem; }
.sr-swatch-box { width: .8rem; height: .8rem; border-radius: 2px; display: inline-block; }
.sr-legend-metrics abbr, .sr-eval abbr { cursor: help; margin-right: .6rem; }
.sr-help { font-size: .85rem; color: var(--body-text-color-subdued); margin: .3rem 0 0 0; }
.sr-eval ul { margin: .2rem 0 .6rem 0; padding-left: 1.1rem; }
.sr-metric-line { margin: .15rem 0; line-height: 1.5; }
.sr-badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600;
  white-space: nowrap; cursor: help; }
.sr-badge-noise { background: #E5E7EB; color: #374151; }
.sr-badge-gain { background: #D1FAE5; color: #065F46; }
.sr-badge-loss { background: #FEE2E2; color: #991B1B; }
.sr-badge-seed { background: #FEF3C7; color: #92400E; }
#data-report { overflow-wrap: anywhere; }
/* "dropped", not "drop/ped", on a phone (Gradio's tables break words); a long problem line wraps on screen */
#data-report table, #job-metrics table { word-break: normal; }
#data-report th, #data-report td, #job-metrics th, #job-metrics td { overflow-wrap: normal; padding: 6px 8px; }
#data-report pre code { white-space: pre-wrap; overflow-wrap: anywhere; }
#rescan { align-self: center; }  /* a button's height beside the run list and the k slider, not theirs */
.secondary-wrap input { padding-right: 1.6rem !important; text-overflow: ellipsis; }  /* text ends before the ▾ */
"""


def build_demo(studio: Studio) -> gr.Blocks:
    """The app's Blocks: the header, the run selector, then the Explore, Train, Evaluate and Data tabs over one Studio."""
    studio.config.thumbs.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([studio.config.thumbs])  # thumbnails are served as they are, not copied per request
    with gr.Blocks(title="SICSRec Studio") as demo:
        gr.HTML(HEADER)
        top = shell.render(studio, demo)
        with gr.Tabs() as tabs:
            explore.render(studio, top)
            datasets = train.render(studio, top)
            evaluate.render(studio, top)
            data.render(studio, datasets)
        shell.follow_tabs(tabs, top)
    demo.queue(default_concurrency_limit=4)  # inference is read-only: a few sessions may run at once
    return demo


def launch_options(studio: Studio) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`: theme, CSS, servable folders, upload size limit."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
        "css": CSS,
        "allowed_paths": [str(studio.config.thumbs)],
        "max_file_size": "200mb",
        "footer_links": ["api"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (see the module docstring)."""
    p = argparse.ArgumentParser(description="SICSRec Studio (Gradio app)")
    p.add_argument(
        "--data",
        default="demo",
        help="dataset: the Train tab's default, and the catalogue when no model "
        "is loaded ('demo' = embedded MovieLens)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=AppConfig.checkpoint,
        help="run folder (results.json + checkpoints/<model>/) served by default [checkpoints/demo]",
    )
    p.add_argument("--images", type=Path, default=None, help="folder of <item_id>.jpg/.png posters or covers")
    p.add_argument("--workdir", type=Path, default=AppConfig.workdir, help="where training runs and uploads go [runs]")
    p.add_argument(
        "--threads",
        type=int,
        default=AppConfig().train_threads,
        help="torch threads of training jobs [all cores]; serving uses one per request",
    )
    p.add_argument(
        "--train-nice",
        type=int,
        default=AppConfig.train_nice,
        help=f"CPU priority of a training process below the app's, so clicks are answered first [{AppConfig.train_nice}]; "
        "0 trains at full speed",
    )
    p.add_argument("--host", default=None, help="bind address (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the shared state once, then serve the app."""
    args = parse_args(argv)
    setup_logging()
    if args.images is not None and not args.images.is_dir():
        raise SystemExit(f"--images {args.images}: not a folder")
    try:
        studio = Studio(
            AppConfig(
                data=args.data,
                checkpoint=args.checkpoint,
                images=args.images,
                workdir=args.workdir,
                train_threads=args.threads,
                train_nice=args.train_nice,  # 0 or less: the app's own priority (jobs.lower_priority)
            )
        )
    except DataError as e:
        raise SystemExit(f"error: no usable checkpoint, and --data does not load: {e}") from None
    studio.warm_thumbnails()
    studio.warm_bridge()
    build_demo(studio).launch(server_name=args.host, server_port=args.port, **launch_options(studio))


if __name__ == "__main__":
    main()
