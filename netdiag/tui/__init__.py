"""The Textual TUI: pick a namespace, see its state and findings live, and act on them.

`app.py` wires the screens together; the screens live in screens/, reusable widgets in
widgets/, the messages workers post in messages.py, and what each tab shows in rows.py.
"""
