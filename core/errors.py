"""Errors that reach the user as one clear line (never a traceback)."""


class WhetstoneError(Exception):
    """A job failed. The CLI prints the message on one line and exits 1."""

    exit_code = 1


class UserError(WhetstoneError):
    """Bad input or usage (missing file, unknown model, invalid value). Exit code 2."""

    exit_code = 2


class Cancelled(WhetstoneError):
    """The user cancelled a long job."""

    exit_code = 130
