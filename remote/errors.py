"""The error a job raises for a failure the user can fix (config, data, missing files).

``remote.run_job`` prints such errors as one line on stderr and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class JobError(Exception):
    """A user-fixable problem: the message says what is wrong and where."""
