"""User-facing errors: the CLI prints ``str(err)`` on one line and exits non-zero."""


class CvaeError(Exception):
    """A problem with the user's input (data, config, run directory) rather than a bug."""


class DataError(CvaeError):
    """A dataset file or folder is missing, truncated or malformed."""


class ConfigError(CvaeError):
    """A config value is missing, has the wrong type, or is out of range."""


class TrainingDiverged(CvaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception as one informative line (headers such as ``Error(s) in ...:`` dropped, a
    missing key named), shortened to ``limit`` characters."""
    if isinstance(err, KeyError):
        return f"no {err} entry"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = "; ".join([line for line in lines if not line.endswith(":")] or lines)
    text = text or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
