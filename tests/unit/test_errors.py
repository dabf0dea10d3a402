"""The error registry is the one list of codes: README's table, the codec and the batch job agree with it."""

from __future__ import annotations

import re

import pytest

from handler.errors import ERRORS, ServingError, internal_error
from tests.catalogue import CASES
from tests.conftest import ROOT
from tests.oip_catalogue import OIP_CASES

ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d{3})\s*\|")


def readme_codes() -> dict[str, int]:
    """{code: status} from README's table of error codes (rows `| `code` | status | when |`)."""
    rows = [ROW.match(line) for line in (ROOT / "README.md").read_text().splitlines()]
    return {m.group(1): int(m.group(2)) for m in rows if m}


def test_readme_table_is_the_registry():
    assert readme_codes() == {e.code: e.status for e in ERRORS.values()}


def test_an_unregistered_code_cannot_be_raised():
    with pytest.raises(ValueError, match="unregistered error code 'bad_thing'"):
        ServingError("bad_thing", "no such code")


def test_status_comes_from_the_registry():
    assert ServingError("text_too_long", "x").status == 413
    assert ServingError("unsupported_media_type", "x").status == 415
    err = internal_error("req-9")
    assert err.status == 500 and "req-9" in err.message


# answered by the page's development server before TorchServe sees the request, so no handler case can produce
# them: tests/unit/test_web.py does
PAGE_SERVER_ONLY = {"forbidden"}


def test_every_client_error_code_is_in_the_catalogue():
    """Each registered 4xx code has at least one case in the bad-input catalogue that produces it."""
    seen = {c.code for c in CASES} | {slot for c in CASES for slot in c.slots} | {c.code for c in OIP_CASES}
    client_errors = {e.code for e in ERRORS.values() if 400 <= e.status < 500}
    assert client_errors >= PAGE_SERVER_ONLY
    assert client_errors - PAGE_SERVER_ONLY <= seen, sorted(client_errors - PAGE_SERVER_ONLY - seen)
