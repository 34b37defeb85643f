"""The README's main job: build a broken lab, diagnose it, repair it, and show it healthy.

    python -m netdiag.demo [LAB]      (default: broken-mtu)

It runs the real `netdiag` commands one after another and prints each with its output, the
way a person would type them: `lab up`, `check --all`, `repair --apply`, `check --all` again,
an HTTP request to the pets web front end (which calls its database by name), and `lab down`
— always, also when a step fails. Success is judged on the lab's own namespaces; findings
about other namespaces of the machine are shown but are not the demo's to fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from netdiag.topology import journal as journals

DEFAULT_LAB = "broken-mtu"
WEB_REQUEST = ("import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
               "'http://127.0.0.1:5000/', timeout=5).read().decode())")


def netdiag(*args: str, show: bool = True) -> subprocess.CompletedProcess:
    if show:
        print(f"\n$ netdiag {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "netdiag", *args], text=True,
                          capture_output=True)
    if show:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
    return done


def check_all(lab: str) -> list[dict]:
    """Show `check --all` and return its findings that concern the lab (its nodes or its
    namespaces), from the JSON report the same run writes."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        netdiag("check", "--all", "--output", f"json={report.name}")
        findings = json.load(report)["findings"]
    return [f for f in findings if f["namespace"]["label"].startswith((f"{lab}/", f"{lab}-"))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lab = argv[0] if argv else DEFAULT_LAB
    print(f"netdiag demo: build the bundled lab {lab!r}, find what is broken, repair it.")
    if lab in journals.names():
        netdiag("lab", "down", lab)
    try:
        if netdiag("lab", "up", lab).returncode != 0:
            return 1
        before = check_all(lab)
        netdiag("repair", "--lab", lab, "--apply")
        after = check_all(lab)
        print(f"\n$ netdiag lab exec {lab} web -- python3 -c '<GET http://127.0.0.1:5000/>'")
        web = subprocess.run([sys.executable, "-m", "netdiag", "lab", "exec", lab, "web", "--",
                              sys.executable, "-c", WEB_REQUEST], text=True, capture_output=True)
        print(web.stdout.strip() or web.stderr.strip())
    finally:
        netdiag("lab", "down", lab)
    healthy = not after and web.stdout.startswith("pets:")  # a healthy lab has no `before`
    print(f"\ndemo: {len(before)} findings in lab {lab} before repair, {len(after)} after; "
          f"web answered: {'yes' if web.stdout.startswith('pets:') else 'no'} — "
          f"{'OK' if healthy else 'FAILED'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
