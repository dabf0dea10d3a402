"""README's first prediction is the server's real answer: the curl's body, sent as README sends it, gets the
answer README shows."""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT


def readme_example() -> tuple[str, str, dict]:
    """(Content-Type, body, answer) of README's curl and the JSON block that follows it."""
    text = (ROOT / "README.md").read_text()
    curl = re.search(r"```bash\n(TOKEN=.*?curl .*?)```\s*```json\n(.*?)```", text, re.S)
    assert curl, "README has no curl example followed by its answer"
    command, answer = curl.groups()
    content_type = re.search(r"-H 'Content-Type: ([^']+)'", command).group(1)
    body = re.search(r"--data-binary '([^']+)'", command).group(1)
    return content_type, body, json.loads(answer)


def test_readme_curl_gets_the_answer_readme_shows(server):
    content_type, body, shown = readme_example()
    got = server.client.predict_raw(body, content_type).json()
    assert list(got) == list(shown)  # the same fields, in the same order
    for field, value in shown.items():
        if isinstance(value, float):
            assert abs(got[field] - value) < 1e-6, field
        else:
            assert got[field] == value, field
