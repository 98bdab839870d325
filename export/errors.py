"""The two failures the CLI reports as one `error:` line: bad input (exit 2) and a step that ran
and failed (exit 1)."""


class ExportInputError(Exception):
    """Bad input (model dir, repository, flags, a missing tool), found before any slow work."""


class ExportFailure(Exception):
    """A check or build that ran and failed: parity, the engine build, a Triton that does not
    serve the version. Nothing is published."""
