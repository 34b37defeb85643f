"""The documentation stays true to the code: docs/rules.md is what the rules' docstrings make, and
every relative link in the Markdown documents leads to a file in the repository (no root)."""

import re
from pathlib import Path

from netdiag import rules_doc

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_rules_reference_is_current():
    written = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert written == rules_doc.render(), \
        "docs/rules.md is stale: run python -m netdiag.rules_doc > docs/rules.md"


def test_relative_links_lead_to_files_in_the_repository():
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):  # an anchor on the page, or a URL
                continue
            if not (document.parent / path).exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert not broken, f"links to files that are not in the repository: {broken}"
