"""The paper's stage A: LLM backends and pair mining (A1), then encoder alignment on the pairs (A2)."""
