"""Report formats: text for people, JSON for scripts, JUnit for CI dashboards, SARIF for code hosts.

Each format is a function Report → str; formats.py's FORMATS maps the names `--format` and
`--output` accept. FORMAT_NAMES are those names without loading the formats (nor the rule
engine they need), for `check --help`; a test keeps the two the same.
"""

FORMAT_NAMES = ("text", "json", "junit", "sarif")
