"""Progress bars that vanish when done (extraction, evaluation, training steps), and print nothing into a log.

A transient rich bar on a stream that is not a terminal cannot erase itself: it leaves empty lines behind, in a
file or a pipe where ``--json`` output is being collected. Such bars are therefore off unless stderr is a terminal.
"""

from __future__ import annotations

from typing import Any


def transient_progress(*columns: Any, enabled: bool = True) -> Any:
    """A rich ``Progress`` on stderr that is erased when it stops; disabled when ``enabled`` is False or stderr is
    not a terminal. ``columns`` as for ``Progress`` (its default columns when none are given)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(*columns, console=console, transient=True, disable=not (enabled and console.is_terminal))
