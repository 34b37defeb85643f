#!/bin/sh
# The image's entry point: no arguments opens the TUI on the namespace the container shares;
# a netdiag subcommand runs netdiag; anything else runs as a command (through bash when it is
# not a program on PATH, so `docker run IMAGE 'ip -br a | grep eth0'` works too).
set -e

case "${1-}" in
  "")
    if [ -t 0 ] && [ -t 1 ]; then
      netdiag tui --ns self && exit 0
      echo "netdiag-image: the TUI did not start; here is a shell instead" >&2
    else
      echo "netdiag-image: no terminal for the TUI (use docker run -it); starting a shell" >&2
    fi
    exec bash -l
    ;;
  ns|show|snapshot|check|explain|diff|lab|repair|net|plugin|tui|agent|fleet|path|capture|exposure|completion|man|--version|--help|-h)
    exec netdiag "$@"
    ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec bash -c "$*"
