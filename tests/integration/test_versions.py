"""A new version on a real TorchServe, the three steps as an operator runs them: build it beside the served archive
(`make archive VERSION=2.0`), `serving.client promote sentiment_2.0.mar`,
`serving.client rollback sentiment`."""

from __future__ import annotations

import pytest

from batch.mar import version as archive_version
from serving.build.archive import build
from serving.client import cli
from tests.conftest import BOOK_REVIEWS


def _run(server, capsys, *args: str) -> tuple[int, str, str]:
    """`python -m serving.client <args>` against this server, in process: (exit status, stdout, stderr)."""
    urls = ["--inference-url", server.client.inference_url, "--management-url", server.client.management_url]
    status = cli.main([*urls, "--key-file", str(server.client.key_file), *args])
    out, err = capsys.readouterr()
    return status, out.strip(), err.strip()


def _answering_version(server) -> str:
    return server.client.predict(BOOK_REVIEWS["positive"])["model_version"]


def test_build_promote_and_roll_back_a_new_version(server, capsys):
    # 1. build: what `make archive VERSION=2.0` runs, into this server's store, beside the served 1.0
    built = build("sentiment", "2.0", server.model_store)
    assert built == server.model_store / "sentiment_2.0.mar" and archive_version(built) == "2.0"
    assert archive_version(server.model_store / "sentiment.mar") == "1.0"

    # 2. promote: one worker, answering, then the default
    status, out, _ = _run(server, capsys, "promote", "sentiment_2.0.mar")
    assert status == 0
    assert out == (
        "sentiment 2.0 registered with 1 worker and made the default; "
        "previous default 1.0 stays registered for `rollback`"
    )
    [described] = server.client.describe("sentiment", "2.0")
    assert len(described["workers"]) == 1 and described["minWorkers"] == described["maxWorkers"] == 1
    assert server.client.default_version("sentiment") == "2.0"
    assert _answering_version(server) == "2.0"

    # the default cannot simply be unregistered: said in words, nothing changed
    status, _, err = _run(server, capsys, "unregister", "sentiment", "2.0")
    assert status == 1 and "sentiment 2.0 is the default: `rollback sentiment`" in err
    assert server.client.versions("sentiment") == ["1.0", "2.0"]

    # 3. roll back: 1.0 the default again, 2.0 gone
    status, out, _ = _run(server, capsys, "rollback", "sentiment")
    assert (status, out) == (0, "sentiment 2.0 unregistered; the default is 1.0 again")
    assert _answering_version(server) == "1.0"
    assert server.client.versions("sentiment") == ["1.0"]
    assert server.client.predict_raw(BOOK_REVIEWS["positive"], "text/plain", version="2.0").status_code == 404

    # nothing left to roll back to
    status, out, err = _run(server, capsys, "rollback", "sentiment")
    assert status == 1 and out == ""
    assert err == "error: sentiment has only version 1.0 registered: there is no version to roll back to"


def test_a_version_that_never_answers_is_not_made_the_default(server, monkeypatch):
    """promote leaves the service as it was when the new version does not answer in time."""
    build("sentiment", "3.0", server.model_store)

    def never(model, version, timeout=0.0):
        raise TimeoutError(f"{model} {version} did not answer a prediction within {timeout:.0f} s")

    monkeypatch.setattr(server.client, "wait_until_answers", never)
    with pytest.raises(TimeoutError, match="sentiment 3.0 did not answer"):
        server.client.promote("sentiment_3.0.mar")
    assert server.client.versions("sentiment") == ["1.0"]
    assert server.client.default_version("sentiment") == "1.0"


def test_rollback_returns_to_the_previous_default_not_the_highest_other_version(server, capsys):
    """1.0 the default, 2.0 and 3.0 registered, 3.0 made the default: rollback returns to 1.0, the default before
    3.0, though 2.0 is the highest other version; a second rollback has no earlier default to return to."""
    for version in ("2.0", "3.0"):
        build("sentiment", version, server.model_store)
        server.client.register_version(f"sentiment_{version}.mar", workers=1)
    assert _run(server, capsys, "set-default", "sentiment", "3.0")[0] == 0
    status, out, _ = _run(server, capsys, "rollback", "sentiment")
    assert (status, out) == (0, "sentiment 3.0 unregistered; the default is 1.0 again")
    assert server.client.versions("sentiment") == ["1.0", "2.0"] and _answering_version(server) == "1.0"
    status, _, err = _run(server, capsys, "rollback", "sentiment")
    assert status == 1 and "no record of the default before 1.0" in err
    server.client.unregister("sentiment", "2.0")
