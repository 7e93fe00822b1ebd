"""One exception type for mistakes a user can fix: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input (file, option, config). The message is shown as-is, without a traceback."""
