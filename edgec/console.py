"""The terminal side of the CLI: text from models and files never acts on the terminal.

Names in a model (nodes, inputs, tensors) and paths are the user's, or an
attacker's: a name holding an escape sequence could move the cursor, retitle
the window or hide what follows, and one holding ``[`` would be read as Rich
markup (a crash on ``[/]``, or styling). Every string the CLI shows passes
through ``SafeConsole.render_str``, which replaces control characters with
visible ``\\xNN`` escapes; user text put into markup is escaped with
``escape`` (rich's), and markup that still fails to parse is shown as plain
text rather than raised.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.text import Text

#: C0 controls but tab and newline, DEL, and the C1 range (8-bit CSI and friends)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character shown as ``\\xNN`` (and kept one line
    where it had carriage returns)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """``text`` made visible (``visible``) and kept on one line: line breaks in a
    name or path shown as ``\\n``, so an error stays the one line it is meant to be
    and a name cannot forge a second ``edgec: error:`` line."""
    return visible(text.replace("\r", "\\r").replace("\n", "\\n"))


def shown(text: object) -> str:
    """User text ready for a markup string: control characters made visible,
    markup escaped."""
    return escape(visible(str(text)))


class SafeConsole(Console):
    """A rich Console that makes control characters visible in everything it renders
    and falls back to plain text when markup does not parse."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("emoji", False)  # ":name:" in a model name stays as typed
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs) -> Text:
        text = visible(text)
        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            return super().render_str(text, **{**kwargs, "markup": False})
