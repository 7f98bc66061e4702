"""What every tab shares: the run selector (run, rescan, k) above the tabs, the Blocks being built, and
`UI`, the event options of the UI's own events (kept out of the documented API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sicsrec.app.studio import Studio

UI: dict[str, Any] = {"api_visibility": "undocumented"}  # UI wiring, not part of the public API


@dataclass
class Shell:
    """The components above the tabs that the tabs read or update, and the Blocks (for its load events)."""

    demo: gr.Blocks
    run: gr.Dropdown
    k: gr.Slider


class RunSelector:
    """Handlers of the run selector."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def refresh_runs(self, run_key: str) -> gr.Dropdown:
        """Re-list run folders (a finished training run appears here)."""
        choices = self.studio.run_choices()
        return gr.Dropdown(choices=choices, value=run_key if run_key in [v for _, v in choices] else "")


def render(studio: Studio, demo: gr.Blocks) -> Shell:
    """Build the run selector row and wire its rescan button; returns what the tabs share."""
    selector = RunSelector(studio)
    with gr.Row(equal_height=True):
        run = gr.Dropdown(
            choices=studio.run_choices(),
            value="",
            label="Run",
            info="The trained run served in Explore and Evaluate",
            scale=4,
            elem_id="run-select",
        )
        rescan = gr.Button("↻ Rescan runs", size="sm", scale=0, min_width=120)
        k = gr.Slider(5, 30, value=10, step=1, label="Recommendations (k)", scale=2)
    rescan.click(selector.refresh_runs, run, run, **UI)
    return Shell(demo, run, k)


__all__ = ["UI", "RunSelector", "Shell", "render"]
