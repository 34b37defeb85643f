"""The netdiag Textual app: a source of state, and the screens that show it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from netdiag.model import NamespaceRef
from netdiag.tui.screens.help import HelpScreen
from netdiag.tui.screens.namespace import NamespaceScreen
from netdiag.tui.screens.picker import PickerScreen
from netdiag.tui.source import Source

DEFAULT_REFRESH_SECONDS = 10.0


def screenshot_folder() -> Path:
    """The folder netdiag was started in; where that cannot be written, the Downloads folder
    ($XDG_DOWNLOAD_DIR, ~/Downloads) if there is one, else the temporary folder."""
    try:
        here: Path | None = Path.cwd()
    except OSError:  # removed meanwhile
        here = None
    downloads = Path(os.environ.get("XDG_DOWNLOAD_DIR") or "~/Downloads").expanduser()
    for folder in (here, downloads):
        if folder is not None and folder.is_dir() and os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.gettempdir())


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

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """ctrl+s: an SVG of the screen, saved where the user will find it, and said where
        (Textual's own writes into ~/Downloads only, and fails where there is none: root on
        a server)."""
        folder = Path(path) if path else screenshot_folder()
        try:
            saved = self.save_screenshot(filename, str(folder))
        except OSError as exc:
            self.notify(f"Could not save the screenshot in {folder}: {exc.strerror or exc}",
                        title="Screenshot", severity="error")
            return
        self.notify(f"Saved the screenshot as {saved}", title="Screenshot")

    def action_help(self) -> None:
        sections = [("Everywhere", self.BINDINGS),
                    ("Namespace picker", PickerScreen.BINDINGS),
                    ("Attached namespace", NamespaceScreen.BINDINGS)]
        self.push_screen(HelpScreen(sections))
