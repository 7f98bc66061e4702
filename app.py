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
.sr-gallery .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; }
.sr-gallery .thumbnail-item { aspect-ratio: 2 / 3 !important; height: auto !important; }
.sr-gallery .caption-label { font-size: 11px; max-width: 94%; }
@media (max-width: 640px) {  /* phones: three posters a row instead of eight 35-px ones */
  .sr-gallery .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
"""


def build_demo(studio: Studio) -> gr.Blocks:
    """The app's Blocks: the header, the run selector, then the Explore, Train, Evaluate and Data tabs over one Studio."""
    studio.config.thumbs.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([studio.config.thumbs])  # thumbnails are served as they are, not copied per request
    with gr.Blocks(title="SICSRec Studio") as demo:
        gr.HTML(HEADER)
        top = shell.render(studio, demo)
        with gr.Tabs():
            explore.render(studio, top)
            datasets = train.render(studio, top)
            evaluate.render(studio, top)
            data.render(studio, datasets)
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
            )
        )
    except DataError as e:
        raise SystemExit(f"error: no usable checkpoint, and --data does not load: {e}") from None
    studio.warm_thumbnails()
    build_demo(studio).launch(server_name=args.host, server_port=args.port, **launch_options(studio))


if __name__ == "__main__":
    main()
