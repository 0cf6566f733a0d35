"""Rich progress bars for long steps of a run (extract/prepare, upload); silent when output is not a TTY."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ttsync.app.runs import Reporter


class RichReporter(Reporter):
    """Shows one bar per stage on stderr; notes are printed above the bars."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def stage(self, name: str, total: int | None = None) -> None:
        """Start (or restart) the bar of a stage."""
        if name in self._tasks:
            self._progress.update(self._tasks[name], total=total, completed=0)
        else:
            self._tasks[name] = self._progress.add_task(name, total=total)

    def advance(self, name: str, amount: int) -> None:
        """Move a stage's bar forward."""
        if name not in self._tasks:
            self.stage(name)
        self._progress.advance(self._tasks[name], amount)

    def note(self, text: str) -> None:
        """Print a line above the bars."""
        if self.enabled:
            self._progress.console.print(text)
