"""The TUI's screens: the namespace picker, the attached namespace, dialogs and help."""
