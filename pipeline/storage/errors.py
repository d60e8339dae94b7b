"""The one expected-failure type: bad input, bad params, a missing model. The CLI prints it as one
line and exits 1; anything else is a bug and keeps its traceback."""


class PipelineError(Exception):
    """An expected failure, worded for the user: `where: what is wrong (and what to do)`."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type where it has none: libraries'
    messages often run to several lines, and an error here is one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
