"""Exceptions shared by every package. Library code raises; only the CLI prints and exits."""


class PhewasError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits non-zero."""


class InputError(PhewasError, ValueError):
    """Bad input. The message names the file and, where known, the row and column."""

    def __init__(self, path, message, row=None, column=None):
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.row, self.column, self.message = str(path), row, column, message

    def __reduce__(self):  # raised in a worker process, re-raised in the parent as it was
        return type(self), (self.path, self.message, self.row, self.column)


class OutputExistsError(PhewasError, FileExistsError):
    """An output folder exists already and overwriting was not asked for."""


class SettingError(PhewasError, ValueError):
    """A setting (command-line flag or run-all TOML key) outside its range."""

