"""The exceptions npgrad raises on bad input. Each message names the offending thing."""


class NpgradError(Exception):
    """Base class of every error npgrad raises on purpose."""


class SpaceError(NpgradError, ValueError):
    """An observation or action space npgrad cannot build a policy for."""


class ConfigError(NpgradError, ValueError):
    """A hyperparameter (or other setting) with an invalid name or value."""


class ShapeError(NpgradError, ValueError):
    """An array of the wrong shape, dtype or with non-finite values."""


class FileFormatError(NpgradError, ValueError):
    """A saved file that is missing, truncated, pickled, or from an incompatible version."""


class EnvError(NpgradError, RuntimeError):
    """The environment raised, or returned non-finite observations or rewards, during a rollout."""


class NpgradWarning(UserWarning):
    """A setting npgrad accepts but that probably does not do what was meant (e.g. a minibatch above the batch)."""


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a crafted value may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
