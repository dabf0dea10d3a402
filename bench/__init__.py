"""`make bench`: the in-process ceiling, TorchServe and a FastAPI peer measured side by side in one run."""
