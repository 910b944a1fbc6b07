"""Suite errors that name the file, line and field: `suite.yaml:14: methods[1].kd.temperature: must be > 0`."""

from __future__ import annotations

from collections.abc import Sequence

Loc = tuple[str | int, ...]


def format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top>"


class SpecError(ValueError):
    """A suite that cannot run. `str()` is the one-line message shown to the user."""

    def __init__(self, path: str, line: int | None, loc: Sequence[str | int], message: str) -> None:
        self.path, self.line, self.loc, self.message = path, line, tuple(loc), message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {format_loc(loc)}: {message}")
