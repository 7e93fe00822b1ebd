"""One exception type for mistakes a user can fix: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input (file, option, config). The message is shown as-is, without a traceback."""


def one_line(e: BaseException) -> str:
    """Another library's exception as one short line: its type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
