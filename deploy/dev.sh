#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs the node with its test tools, then
#   deploy/dev.sh serve [resolver serve options]   runs the node (embedded Postgres unless RESOLVER_DSN)
#   deploy/dev.sh test  [pytest options]           runs every test: unit, integration, end to end
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "dev.sh: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

venv=${RESOLVER_VENV:-.venv}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  serve) exec "$venv/bin/resolver" serve "$@" ;;
  test) exec "$venv/bin/python" -m pytest "$@" ;;
  *) echo "usage: deploy/dev.sh serve|test [options]" >&2; exit 2 ;;
esac
