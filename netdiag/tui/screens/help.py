"""The help screen: every key binding of every screen, generated from the BINDINGS lists so
that it cannot fall out of date."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from netdiag.tui.probes import USAGE


def key_name(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "right_square_bracket": "]",
             "left_square_bracket": "[", "escape": "esc"}
    return names.get(key, key)


def help_text(sections: list[tuple[str, list[Binding]]]) -> str:
    lines = []
    for title, bindings in sections:
        lines.append(title)
        for b in bindings:
            lines.append(f"  {key_name(b.key):8} {b.description}")
        lines.append("")
    lines += ["Filters: / focuses the filter of the current tab; type words to keep rows that",
              "contain all of them; enter returns to the table; esc clears it.",
              f"Probes (p): {USAGE}",
              "Rows marked » are the evidence of the highlighted finding."]
    return "\n".join(lines)


class HelpScreen(Screen[None]):
    """A screen of its own (not a dialog over the tabs): all of it is read at once."""

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("q", "dismiss", "Close"),
                Binding("question_mark", "dismiss", "Close")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        yield Static("netdiag tui — keys (esc closes)", classes="title")
        with VerticalScroll(id="help"):
            yield Static(help_text(self.sections))
        yield Footer()

    def action_dismiss(self) -> None:
        self.dismiss(None)
