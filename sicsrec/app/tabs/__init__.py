"""The app's tabs, one module each (explore, train, evaluate, data): a `render` that builds the tab and wires it
to the handlers beside it."""
