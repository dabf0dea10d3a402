"""The one error a user of the batch job can cause and fix: a wrong column, path, format or option.

`python -m batch` prints its message alone and exits 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in how the job was asked for, said in words that name the option to change."""
