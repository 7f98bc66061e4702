"""One experiment end to end: prepare -> (stage A) -> train -> evaluate -> checkpoint -> results.

The CLI, the app's Train tab and `bench/` all run experiments through here, so resume,
skip-if-current, progress events and cancellation behave the same everywhere.
"""
