"""What every tab shares: the status line under the header (version, parts served by a fallback), the run
selector (run, rescan, k; k shows on the Explore tab only, the one it acts on) above the tabs, the Blocks being
built, and `UI`, the event options of the UI's own events (kept out of the documented API)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from sicsrec import __version__
from sicsrec.app.studio import Studio

UI: dict[str, Any] = {"api_visibility": "undocumented"}  # UI wiring, not part of the public API
K_TAB = "explore"  # the id (and label) of the one tab the k slider acts on


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


def status_html(studio: Studio) -> str:
    """The version, and which parts a fallback serves (on a bare host: no LLM, no posters, ...)."""
    missing = studio.fallbacks()
    parts = (
        "Fallbacks: " + "; ".join(escape(m) for m in missing) + "."
        if missing
        else "Every part is the real one (trained model, LLM, posters)."
    )
    return f'<p class="sr-status">SICSRec Studio v{escape(__version__)} · {parts}</p>'


def k_for_tab(evt: gr.SelectData) -> gr.Slider:
    """Show the k slider on the Explore tab only."""
    return gr.Slider(visible=evt.index == K_TAB or str(evt.value).strip().lower().startswith(K_TAB))


def follow_tabs(tabs: gr.Tabs, shell: Shell) -> None:
    """Wire the tabs so the k slider shows only where it acts (the Explore tab)."""
    tabs.select(k_for_tab, None, shell.k, show_progress="hidden", **UI)


def render(studio: Studio, demo: gr.Blocks) -> Shell:
    """Build the status line and the run selector row and wire its rescan button; returns what the tabs share."""
    selector = RunSelector(studio)
    gr.HTML(status_html(studio), elem_id="sr-status")
    with gr.Row(equal_height=True):
        run = gr.Dropdown(
            choices=studio.run_choices(),
            value="",
            label="Run",
            info="The trained run served in Explore and Evaluate",
            scale=4,
            min_width=260,  # a phone gives the run's name the full width, the rescan button goes below
            elem_id="run-select",
        )
        rescan = gr.Button("↻ Rescan runs", size="sm", scale=0, min_width=120, elem_id="rescan")
        k = gr.Slider(5, 30, value=10, step=1, label="Recommendations (k)", scale=2, elem_id="k-slider")
    rescan.click(selector.refresh_runs, run, run, **UI)
    return Shell(demo, run, k)


__all__ = ["K_TAB", "UI", "RunSelector", "Shell", "follow_tabs", "k_for_tab", "render", "status_html"]
