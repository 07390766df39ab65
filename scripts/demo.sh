#!/usr/bin/env bash
# Install what the demo needs and run it: http://127.0.0.1:5000/admin/ (login admin / admin).
# SQLite by default; set DATABASE_URL to use another database, e.g.
#   DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/db bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m pip install -q -r requirements.txt
"$PY" -m pip install -q -e .
exec "$PY" app.py "$@"
