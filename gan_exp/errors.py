"""The one exception type a user sees for a config that cannot run, and the check that most
often raises it."""

from __future__ import annotations

from collections.abc import Collection

# the `auto | true | false` settings
AUTO_BOOL = ("auto", True, False)


class ConfigError(ValueError):
    """A config value or combination that cannot train; the message names the option and the fix.

    Raised before any training step so that a typo never costs a half-written run.
    """


class DatasetError(ConfigError):
    """Dataset files missing, unreadable or undownloadable; the message says where they go."""


def _as_written(value: object) -> str:
    """A value as a user writes it in YAML or an override: `true`, not `True`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_choice(option: str, value: object, allowed: Collection[object]) -> None:
    """Reject a value not in `allowed`, naming the option and the allowed values."""
    if value not in allowed:
        shown = ", ".join(_as_written(a) for a in allowed)
        raise ConfigError(f"{option}={value!r} is not supported; allowed: {shown}")
