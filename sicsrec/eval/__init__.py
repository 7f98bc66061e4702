"""Full-ranking evaluation: metrics, the evaluator, and the comparison table."""
