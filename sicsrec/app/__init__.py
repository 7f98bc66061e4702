"""The Gradio app's logic (one module per tab; `app.py` at the repo root only wires components to it)."""
