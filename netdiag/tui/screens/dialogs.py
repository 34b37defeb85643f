"""Modal dialogs: confirm a repair plan, type one line (a probe, a file name), and help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from netdiag.findings.finding import Finding
from netdiag.findings.repair import Safety
from netdiag.model import Snapshot


def plan_lines(finding: Finding, snapshot: Snapshot | None) -> list[str]:
    """The repair plan as the commands it amounts to, each in its namespace."""
    from netdiag.repair.executor import describe  # pyroute2 comes with it: not at start-up

    repair = finding.repair
    lines = [f"{finding.code} {finding.rule}: {finding.message}", "",
             f"Repair ({repair.safety.value}): {repair.title}"]
    for step in repair.steps:
        lines.append(f"  {describe(step, snapshot) if snapshot else step.command()}")
    return lines


class RepairDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Apply"),
        Binding("n", "answer(False)", "Cancel"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, finding: Finding, snapshot: Snapshot | None, can_apply: bool):
        super().__init__()
        self.finding = finding
        self.snapshot = snapshot
        self.can_apply = can_apply and finding.repair.safety is not Safety.MANUAL

    def compose(self) -> ComposeResult:
        lines = plan_lines(self.finding, self.snapshot)
        if not self.can_apply:
            reason = "a manual repair: carry it out by hand" \
                if self.finding.repair.safety is Safety.MANUAL else "offline: nothing to apply to"
            lines += ["", f"({reason}) — escape closes"]
        else:
            warning = " This repair is UNSAFE: it may cut traffic." \
                if self.finding.repair.safety is Safety.UNSAFE else ""
            lines += ["", f"Apply these steps now?{warning}  y = apply, n = cancel"]
        with Vertical(classes="dialog"):
            yield Static("\n".join(lines), id="plan")

    def action_answer(self, apply: bool) -> None:
        self.dismiss(apply and self.can_apply)


class PromptDialog(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, value: str = ""):
        super().__init__()
        self.title_text, self.hint, self.value = title, hint, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"{self.title_text}\n{self.hint}  (enter runs, escape cancels)")
            yield Input(value=self.value, placeholder=self.hint, id="prompt")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
