"""Errors that reach the user as one line, with what to do next.

`run.py` prints any `UserError` as ``error: <message>`` and exits with its `exit_code`; everything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, model that does not load)."""

    exit_code: int = 1


class ConfigError(UserError):
    """The config file is missing, unparsable, or fails validation."""

    exit_code = 2


class DataError(UserError):
    """An input dataset is missing, malformed, or unusable after cleaning."""

    exit_code = 3


class ModelLoadError(UserError):
    """A configured model path or id does not load."""

    exit_code = 4


class TeacherError(UserError):
    """The teacher endpoint refused or failed a request after its retries; finished answers stay cached."""

    exit_code = 1
