"""The one exception type a user sees for a config that cannot run."""


class ConfigError(ValueError):
    """A config value or combination that cannot train; the message names the option and the fix.

    Raised before any training step so that a typo never costs a half-written run.
    """


class DatasetError(ConfigError):
    """Dataset files missing, unreadable or undownloadable; the message says where they go."""
