"""Errors a user can act on: the CLI prints them as one line and exits with code 2."""


class NevermindError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelNotFoundError(NevermindError):
    """A model name that is neither bundled, a local path, nor a hub id that could be loaded."""


class CorruptModelError(NevermindError):
    """A model file that exists but cannot be read (truncated or corrupt GGUF, broken cache)."""


class NevermindWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one line)."""
