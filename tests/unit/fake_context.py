"""An in-process TorchServe Context for driving the handler without a server."""

from __future__ import annotations

from pathlib import Path

import yaml
from ts.context import Context, RequestProcessor


def make_context(model_dir: Path, model_yaml_config: dict | None = None) -> Context:
    if model_yaml_config is None:
        model_yaml_config = yaml.safe_load((Path(model_dir) / "model-config.yaml").read_text())
    return Context(
        "sentiment",
        str(model_dir),
        {"model": {"modelVersion": "1.0"}},
        32,
        None,
        "0.12.0",
        model_yaml_config=model_yaml_config,
    )


def batch(context: Context, bodies: list[tuple[bytes | str | dict | list, str | None]]) -> list[dict]:
    """Load a batch into `context` as TorchServe's backend does; returns the handler's `data` list."""
    context.request_ids = {idx: f"req-{idx}" for idx in range(len(bodies))}
    context.request_processor = [RequestProcessor({"body": {"content-type": ct}} if ct else {}) for _, ct in bodies]
    return [{"body": body} for body, _ in bodies]
