"""User-facing error types: anything the user can fix (a bad file, an unknown name) raises DseUserError."""

from __future__ import annotations


class DseUserError(Exception):
    """An error caused by user input; the CLI prints its message (no traceback) and exits with status 2."""


class ConfigError(DseUserError):
    """One or more problems in a YAML input; `problems` holds one line per problem (file:line:col: path: message)."""

    def __init__(self, problems: list[str], header: str | None = None):
        self.problems = list(problems)
        self.header = header
        lines = ([header] if header else []) + [f"  {p}" if header else p for p in self.problems]
        super().__init__("\n".join(lines))
