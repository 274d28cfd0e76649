"""The pipeline's error kinds, as the task runner acts on them.

A `PermanentError` is a problem that retrying cannot fix: unfit data, invalid settings, a
missing bucket, refused credentials. The Airflow glue fails such a task at once with the
error's one-line message (`plugins/retrain_airflow.py: failing_fast`). Everything else, a
dropped connection, a throttled request, a plain bug, keeps its own type and goes through the
task's retries, so a transient fault is retried and a bug shows its real traceback.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help; the message names the object, what is wrong and the fix."""


class InvalidSettingsError(PermanentError, ValueError):
    """A Param, CLI option or setting that breaks its declared bounds."""
