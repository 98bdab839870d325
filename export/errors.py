"""The one exception type the CLI turns into a single `error:` line and exit code 2."""


class ExportInputError(Exception):
    """Bad input (model dir, repository, flags), as opposed to a bug or a failed parity gate."""
