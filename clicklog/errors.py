"""The error a user's input raises when it cannot be used."""


class InputError(ValueError):
    """A click log or item catalogue that cannot be used. The message names
    the input, the bad value and what was expected; `retrieval-pipeline`
    prints it as one line (a ValueError, so callers that catch ValueError
    still do)."""
