"""The one expected-failure type: bad input, bad params, a missing model. The CLI prints it as one
line and exits 1; anything else is a bug and keeps its traceback."""


class PipelineError(Exception):
    """An expected failure, worded for the user: `where: what is wrong (and what to do)`."""
