"""Reusable widgets of the TUI: filterable state tables and the findings pane."""
