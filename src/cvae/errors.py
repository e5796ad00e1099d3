"""User-facing errors: the CLI prints ``str(err)`` on one line and exits non-zero."""


class CvaeError(Exception):
    """A problem with the user's input (data, config, run directory) rather than a bug."""


class DataError(CvaeError):
    """A dataset file or folder is missing, truncated or malformed."""


class ConfigError(CvaeError):
    """A config value is missing, has the wrong type, or is out of range."""


class TrainingDiverged(CvaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
