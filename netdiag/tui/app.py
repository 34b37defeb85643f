"""The netdiag Textual app: a source of state, and the screens that show it."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from netdiag.model import NamespaceRef
from netdiag.tui.screens.help import HelpScreen
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.screens.picker import PickerScreen
from netdiag.tui.source import Source

DEFAULT_REFRESH_SECONDS = 10.0


class NetdiagApp(App):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "netdiag"
    BINDINGS = [Binding("question_mark", "help", "Help"), Binding("q", "quit", "Quit"),
                Binding("ctrl+s", "screenshot", "Screenshot (SVG)", show=False)]
    # Every action of the current screen, by name (ctrl+p).
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, source: Source, attach_to: NamespaceRef | None = None,
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS, probe_external: bool = False):
        super().__init__()
        self.source = source
        self.attach_to = attach_to
        self.refresh_seconds = refresh_seconds
        self.probe_external = probe_external  # probes may go beyond the namespaces read

    def on_mount(self) -> None:
        if self.attach_to is not None:
            self.push_screen(NamespaceScreen(self.attach_to))
        else:
            self.push_screen(PickerScreen())

    def attach(self, ref: NamespaceRef) -> None:
        self.push_screen(NamespaceScreen(ref))

    def back_to_picker(self) -> None:
        if any(isinstance(s, PickerScreen) for s in self.screen_stack):
            self.pop_screen()
        else:  # started with --ns: the picker has not been made yet
            self.switch_screen(PickerScreen())

    def action_help(self) -> None:
        sections = [("Everywhere", self.BINDINGS),
                    ("Namespace picker", PickerScreen.BINDINGS),
                    ("Attached namespace", NamespaceScreen.BINDINGS)]
        self.push_screen(HelpScreen(sections))
