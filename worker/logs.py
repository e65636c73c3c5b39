"""Log lines that a file name cannot forge.

Names come from whoever drops a file or sends a job: a newline and an ANSI sequence in one
would write a fake line (say, `ERROR/MainProcess ...`) into an operator's log. Every value
interpolated into a log message is shown with its control characters escaped (`\\n`,
`\\x1b`); the message's own format, and tracebacks, are left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """`text` with every control character written as its escape."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def _safe(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value  # %d and %.2f must still get numbers
    text = str(value)
    return escape(text) if _CONTROLS.search(text) else value


class EscapeControls(logging.Filter):
    """Escapes control characters in the values of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = {key: _safe(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_safe(value) for value in record.args)
        elif isinstance(record.msg, str) and _CONTROLS.search(record.msg.rstrip("\n")):
            record.msg = escape(record.msg)  # a message logged already formatted
        return True


def guard(handlers: list[logging.Handler]) -> None:
    """Give each handler the filter (once)."""
    for handler in handlers:
        if not any(isinstance(f, EscapeControls) for f in handler.filters):
            handler.addFilter(EscapeControls())
