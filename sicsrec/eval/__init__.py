"""Full-ranking evaluation: metrics (ties against the target), the evaluator, the results.json schema, statistics."""
