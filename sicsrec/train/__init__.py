"""Training: one loop for every model (trainer) and the paper's two-step schedule (two_step)."""
