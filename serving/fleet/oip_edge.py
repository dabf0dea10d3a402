"""The fleet edge's part of the Open Inference Protocol (KServe v2): the nginx locations for what TorchServe 0.12
does not serve.

TorchServe routes POST /v2/models/{model}/infer to the handler (handler.oip), but answers neither model metadata
(GET /v2/models/{model}) nor model readiness (GET /v2/models/{model}/ready); its own /v2 and /v2/health/*, behind
ts_open_inference_protocol, answer "ready" whether or not a model has a worker. So the edge answers them: model
metadata from handler.oip.metadata (the one description of the tensors), readiness from the replicas' /ping
(healthy only when every model they serve has its workers). serving/fleet/nginx.conf holds the fixed locations; this
module renders the per-model ones into its @@OIP_MODELS@@.
"""

from __future__ import annotations

import json
from importlib.metadata import version

from handler.oip import metadata

# The edge's answer to GET /v2 (server metadata); the infer route is the only protocol extension-free part served.
SERVER_NAME = "sentiment-fleet"


def server_metadata() -> str:
    return _json({"name": SERVER_NAME, "version": version("torchserve"), "extensions": []})


def _json(obj: dict) -> str:
    text = json.dumps(obj, separators=(",", ":"))
    if "'" in text or "\\" in text:  # nginx's single-quoted string would end early or unescape it
        raise ValueError(f"not renderable into nginx.conf: {text}")
    return text


def locations(models: tuple[str, ...]) -> str:
    """The nginx locations answering each model's metadata and readiness; both need the fleet's credential."""
    blocks = []
    for model in models:
        blocks.append(
            f"""
        location = /v2/models/{model} {{
            if ($credential_ok = 0) {{
                return 401 '{{"error":"unauthorized: send the fleet credential as Authorization: Bearer ..."}}';
            }}
            return 200 '{_json(metadata(model))}';
        }}
        location = /v2/models/{model}/ready {{
            if ($credential_ok = 0) {{
                return 401 '{{"error":"unauthorized: send the fleet credential as Authorization: Bearer ..."}}';
            }}
            proxy_pass http://replicas/ping;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Authorization "";
            proxy_next_upstream error timeout http_500 http_502 http_503;
        }}"""
        )
    return "\n".join(blocks)
