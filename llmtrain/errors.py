"""The error types components raise for what a user can fix or act on; the CLI turns each into
one line and the exit code it carries."""


class LlmtrainError(Exception):
    """A mistake in the user's config or data: the message names the key, file or row."""

    exit_code = 2


class ConfigError(LlmtrainError):
    """A config value that cannot work (out of range, wrong combination, missing file)."""


class DataError(LlmtrainError):
    """Input data that cannot be used (empty, undecodable, malformed), with file and row."""


class TrainingStopped(LlmtrainError):
    """Training ended early on purpose: a signal, or too many non-finite steps in a row."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AlreadyComplete(LlmtrainError):
    """The run directory holds this run finished: nothing to do, and nothing wrong."""

    exit_code = 0
