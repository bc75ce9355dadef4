"""The one exception hierarchy of forensics.

Every error a user can cause is a ``ForensicsError`` (exit code 2: input you must
fix). Its message names the file, row, column, what was expected and what to do
next; the same facts are kept as attributes so that callers (the CLI, tests,
notebooks) can act on them. ``InternalError`` is the one exception that is not a
``ForensicsError``: forensics found itself inconsistent, which is a bug (exit 1).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "ConfigError",
    "DiskFullError",
    "ExpressionError",
    "ForensicsError",
    "IngestError",
    "InternalError",
    "MissingColumnError",
    "QueryError",
    "SchemaError",
    "UnknownNameError",
]


class ForensicsError(Exception):
    """Base class of every error forensics raises on purpose.

    The CLI prints the message on one line and exits with ``exit_code``.
    """

    exit_code: int = 2


class ConfigError(ForensicsError):
    """A setting, mapping file or environment variable is wrong."""


class ExpressionError(ConfigError):
    """A signal's expression cannot be read or does not fit the data's columns.

    The message names where the signal is declared, the signal, the position in
    the expression (1 = its first character) and what was expected there.
    """

    def __init__(
        self,
        message: str,
        *,
        signal: str,
        expression: str,
        position: int,
        expected: str,
    ) -> None:
        super().__init__(message)
        self.signal = signal
        """The signal's name."""
        self.expression = expression
        """The expression as written."""
        self.position = position
        """1-based character position of the problem in ``expression``."""
        self.expected = expected
        """What was expected there."""

    @classmethod
    def at(
        cls,
        where: str,
        signal: str,
        expression: str,
        position: int,
        problem: str,
        *,
        expected: str = "",
    ) -> ExpressionError:
        """Build the one-line message: ``WHERE [signals.NAME] expr "...": position N: PROBLEM``.

        Examples
        --------
        >>> str(ExpressionError.at("m.toml", "s", "a >", 4, "expected a value, found the end"))
        'm.toml: [signals.s] expr "a >": position 4: expected a value, found the end'
        """
        shown = expression if len(expression) <= 120 else expression[:117] + "..."
        message = (
            f"{where}: [signals.{signal}] expr {_quoted(shown)}: position {position}: {problem}"
        )
        return cls(
            message, signal=signal, expression=expression, position=position, expected=expected
        )


def _quoted(text: str) -> str:
    """Double-quoted, with quotes and line breaks escaped so the message stays on one line."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class SchemaError(ForensicsError):
    """The columns of an input do not fit the canonical request-log schema."""


class MissingColumnError(SchemaError):
    """A file lacks one or more required columns (after the mapping is applied)."""

    def __init__(
        self, message: str, *, path: str, missing: Sequence[str], found: Sequence[str]
    ) -> None:
        super().__init__(message)
        self.path = path
        """The file that was refused."""
        self.missing = tuple(missing)
        """The required columns it lacks."""
        self.found = tuple(found)
        """The columns it does have."""

    @classmethod
    def for_file(
        cls,
        path: str,
        missing: Iterable[str],
        found: Iterable[str],
        *,
        mapped: Mapping[str, str] | None = None,
    ) -> MissingColumnError:
        """Build the message for a file that lacks required columns.

        ``mapped`` (column -> name in the file, from the mapping) says which of
        them the mapping already names, so the message does not ask for that again.
        """
        missing, found = sorted(missing), list(found)
        mapped = {m: mapped[m] for m in missing if mapped and m in mapped}
        shown = ", ".join(found) if found else "(none)"
        message = (
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"the file has: {shown}. Nothing from this file was written."
        )
        if mapped:
            message += (
                " The mapping names "
                + ", ".join(f"{m} = {n!r}" for m, n in mapped.items())
                + ", which the file does not have: correct the name in the mapping."
            )
        unmapped = [m for m in missing if m not in mapped]
        if unmapped:
            example = " and ".join(f'{m} = "<your column>"' for m in unmapped)
            message += (
                " If these columns exist under other names, map them in a file given "
                f"with --mapping FILE.toml: under [columns], write {example}"
            )
        return cls(message, path=path, missing=missing, found=found)


class IngestError(ForensicsError):
    """A whole file could not be read (corrupt, truncated, unreadable)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        """The file concerned, when there is one."""


class QueryError(ForensicsError):
    """A query asked for something the database cannot answer."""


class UnknownNameError(QueryError):
    """A column, signal or option name that does not exist."""

    def __init__(self, message: str, *, name: str, valid: Sequence[str]) -> None:
        super().__init__(message)
        self.name = name
        """The name that was asked for."""
        self.valid = tuple(valid)
        """The names that would have been accepted."""

    @classmethod
    def for_name(cls, what: str, name: str, valid: Iterable[str]) -> UnknownNameError:
        """Build the message for an unknown column, signal or dimension."""
        valid = sorted(valid)
        message = f"unknown {what} {name!r}; valid {what}s: {', '.join(valid) or '(none)'}"
        return cls(message, name=name, valid=valid)


class DiskFullError(ForensicsError):
    """The disk holding the database (or its spill folder) ran out of space."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        """The input file being written when the disk filled up, when there is one."""

    @staticmethod
    def caused(exc: BaseException) -> bool:
        """Whether ``exc`` (an OSError or a DuckDB error) says the disk is full."""
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        return "No space left on device" in str(exc)

    @classmethod
    def while_writing(cls, target: str, path: str | None = None) -> DiskFullError:
        """Build the message for a write to ``target`` that failed with "No space left on device"."""
        what = f" while loading {path}" if path else ""
        return cls(
            f"{target}: no space left on the disk{what}. Free some space (or write to "
            "another disk, e.g. with --db) and run the same command again: each file is "
            "loaded whole or not at all, and files already loaded are skipped.",
            path=path,
        )


class InternalError(Exception):
    """forensics found itself inconsistent: a bug in forensics, not in your input.

    Not a ``ForensicsError``, so that code catching input errors never swallows
    it; the CLI prints it with a request to report it and exits with 1.
    """

    exit_code: int = 1

    REPORT = (
        "this is a bug in forensics, please report it (with the command and, if you can, the file)"
    )
    """What the CLI adds to the message."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        """The file concerned, when there is one."""
