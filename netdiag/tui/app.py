"""The netdiag Textual app: a source of state, and the screens that show it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hits
from textual.screen import Screen
from textual.system_commands import SystemCommandsProvider

from netdiag.findings.finding import Evidence
from netdiag.model import NamespaceRef
from netdiag.tui import paths
from netdiag.tui.screens.exposure import ExposureScreen
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


class CommandsInOrder(SystemCommandsProvider):
    """The palette's list before anything is typed, in the order the app gives it (Textual's
    sorts it by title: "Attach to …" for every namespace came before the actions, which
    were mixed with Textual's own)."""

    async def discover(self) -> Hits:
        for title, help_text, callback, discover in self.app.get_system_commands(self.screen):
            if discover:
                yield DiscoveryHit(title, callback, help=help_text)


class NetdiagApp(App):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "netdiag"
    BINDINGS = [Binding("question_mark", "help", "Help"), Binding("q", "quit", "Quit"),
                Binding("ctrl+s", "screenshot", "Screenshot (SVG)", show=False)]
    # Every action of the current screen, by name (ctrl+p).
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = {CommandsInOrder}

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

    def attach(self, ref: NamespaceRef, stop: tuple[Evidence, ...] = ()) -> None:
        self.push_screen(NamespaceScreen(ref, stop))

    def back_to_picker(self) -> None:
        """Back where the user came from: the picker, or the namespace a path was traced
        from (go to where the path stopped)."""
        if len(self.screen_stack) > 2:  # Textual's default screen is the first
            self.pop_screen()
        else:  # started with --ns: the picker has not been made yet
            self.switch_screen(PickerScreen())

    def known_namespaces(self) -> list[NamespaceRef]:
        """The namespaces the picker listed (discovered here when it has not run yet)."""
        picker = next((s for s in self.screen_stack if isinstance(s, PickerScreen)), None)
        if picker is not None and picker.refs:
            return picker.refs
        try:
            return self.source.discover()
        except Exception:  # noqa: BLE001 - the palette then offers no namespaces
            return [self.attach_to] if self.attach_to else []

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """ctrl+p: netdiag's own commands before Textual's (keys, theme, quit): what can be
        done here first, then the namespaces to attach to (a busy host has hundreds)."""
        if isinstance(screen, NamespaceScreen):
            yield SystemCommand("Trace a path from here", "where a flow from "
                                f"{screen.ref.display} goes, simulated", screen.action_path)
            if screen.traced:
                yield SystemCommand("Capture along the path", "netdiag capture: the last "
                                    "path traced sent once, watched on every hop",
                                    screen.action_capture)
                yield SystemCommand("Capture along the path, waiting for its own traffic",
                                    "netdiag capture --wait: nothing sent, watched "
                                    f"{paths.CAPTURE_WAIT_SECONDS:g} s",
                                    partial(screen.action_capture, True))
            if screen.stop:
                yield SystemCommand("Go to where the path stopped",
                                    "the rule or link that stopped the last path traced",
                                    screen.action_go_to_stop)
            yield SystemCommand("Run the checks", f"check --ns {screen.ref.display} again",
                                screen.action_check)
            yield SystemCommand("Show the exposure", "who reaches the sockets of "
                                f"{screen.ref.display}, and how: exposure --ns, simulated",
                                screen.action_exposure)
        elif isinstance(screen, PickerScreen):
            yield SystemCommand("Run the checks", "check --all again: the counts",
                                screen.action_rediscover)
        attached = screen.ref.id if isinstance(screen, NamespaceScreen) else None
        for ref in self.known_namespaces():
            if ref.id != attached:
                yield SystemCommand(f"Attach to {ref.display}",
                                    f"{ref.kind.value} namespace {ref.id}: its state and "
                                    "findings", partial(self.jump_to, ref))
        yield from super().get_system_commands(screen)

    def jump_to(self, ref: NamespaceRef) -> None:
        """Attach to `ref` from wherever the user is: one namespace screen at a time."""
        while isinstance(self.screen, NamespaceScreen) and len(self.screen_stack) > 2:
            self.pop_screen()
        if isinstance(self.screen, NamespaceScreen):  # started with --ns: no picker below
            self.switch_screen(NamespaceScreen(ref))
        else:
            self.attach(ref)

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
                    ("Attached namespace", NamespaceScreen.BINDINGS),
                    ("Exposure (x)", ExposureScreen.BINDINGS)]
        self.push_screen(HelpScreen(sections))
