"""The one exception type that the CLI turns into `landscape: error: <message>`."""


class UserError(Exception):
    """Something the user can fix: bad input, missing file, inconsistent flags.

    The message is one line that says what is wrong and what to do about it.
    """
