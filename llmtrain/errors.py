"""The error types components raise for user mistakes; the CLI turns them into one line."""


class LlmtrainError(Exception):
    """A mistake in the user's config or data: the message names the key, file or row."""


class ConfigError(LlmtrainError):
    """A config value that cannot work (out of range, wrong combination, missing file)."""


class DataError(LlmtrainError):
    """Input data that cannot be used (empty, undecodable, malformed), with file and row."""
