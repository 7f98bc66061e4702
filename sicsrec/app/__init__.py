"""SICSRec Studio, the Gradio app's logic: process state (studio), the run catalogue (runs), training jobs (jobs),
thumbnails, shared figures (plots), the run selector (shell) and one module per tab (tabs/); `app.py` wires them."""
