"""Text progress bars for the CLI, on the standard library alone (the client installs with httpx
and PyYAML only).

``BarBoard`` keeps one bar per key. On a terminal the bars stay in place and are redrawn (ANSI
cursor movement); anywhere else (a pipe, a log file) each change is printed as a new line, so a
log reads top to bottom. ``upload_progress`` draws one byte counter on a terminal and nothing
elsewhere.

Example:
    >>> render_bar("vanilla|seed=0", 1, 2, {"epoch": 1, "val_acc": 0.5}, width=10)
    'vanilla|seed=0:  50%|#####     | 1/2 [epoch=1, val_acc=0.5]'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

BAR_WIDTH = 20
_UP = "\x1b[{}F"  # cursor to the start of the line N lines up
_CLEAR_LINE = "\x1b[2K"
_CLEAR_BELOW = "\x1b[J"


def render_bar(
    label: str, done: int, total: int, postfix: Mapping[str, Any], width: int = BAR_WIDTH
) -> str:
    """``label: pct%|###   | done/total [key=value, ...]``; a total of 0 draws an empty bar."""
    fraction = min(1.0, done / total) if total > 0 else 0.0
    filled = round(fraction * width)
    text = f"{label}: {fraction * 100:3.0f}%|{'#' * filled}{' ' * (width - filled)}| {done}/{total}"
    if postfix:
        text += " [" + ", ".join(f"{key}={value}" for key, value in postfix.items()) + "]"
    return text


@dataclass
class Bar:
    """One bar's state: ``done`` of ``total`` steps and what is shown after it."""

    label: str
    total: int
    done: int = 0
    postfix: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return render_bar(self.label, self.done, self.total, self.postfix)


class BarBoard:
    """Bars keyed by an id, drawn on ``stream``; ``write`` prints a message above them."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._bars: dict[str, Bar] = {}
        self._drawn = 0  # bar lines on screen below the messages (terminal only)

    def bar(self, key: str, label: str, total: int) -> Bar:
        """The bar of ``key``, created (with ``label`` and ``total``) on first use."""
        if key not in self._bars:
            self._bars[key] = Bar(label, total)
        return self._bars[key]

    def show(self, key: str) -> None:
        """Draw the bar of ``key`` after a change."""
        if self._live:
            self._redraw()
        else:
            self._stream.write(self._bars[key].line() + "\n")
        self._stream.flush()

    def write(self, text: str) -> None:
        """A message line; on a terminal it goes above the bars, which are drawn again below."""
        if self._live and self._drawn:
            self._stream.write(_UP.format(self._drawn) + _CLEAR_BELOW)
            self._drawn = 0
        self._stream.write(text + "\n")
        if self._live:
            self._redraw()
        self._stream.flush()

    def _redraw(self) -> None:
        if self._drawn:
            self._stream.write(_UP.format(self._drawn))
        for bar in self._bars.values():
            self._stream.write(_CLEAR_LINE + bar.line() + "\n")
        self._drawn = len(self._bars)


def human_bytes(count: float) -> str:
    """``532`` -> ``532 B``, ``1_250_000`` -> ``1.2 MB`` (decimal units)."""
    units = ["B", "kB", "MB", "GB"]
    while count >= 1000 and len(units) > 1:
        count /= 1000
        units.pop(0)
    return f"{count:.0f} B" if units[0] == "B" else f"{count:.1f} {units[0]}"


def upload_progress(stream: TextIO, label: str = "upload") -> Callable[[int, int], None]:
    """A ``progress(bytes_done, bytes_total)`` callback: one line redrawn in place on a terminal,
    cleared when the upload is complete; silent when ``stream`` is not a terminal."""
    if not stream.isatty():
        return lambda done, total: None

    def update(done: int, total: int) -> None:
        percent = 100 * done / total if total else 100.0
        stream.write(f"\r{_CLEAR_LINE}{label} {percent:3.0f}% {human_bytes(done)}")
        if done >= total:
            stream.write(f"\r{_CLEAR_LINE}")
        stream.flush()

    return update
