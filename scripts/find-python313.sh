#!/usr/bin/env bash
# Print the path of a Python 3.13 interpreter (the Lambda runtime), or explain how to get one.
set -euo pipefail
want="3.13"
check() { [ -n "$1" ] && [ -x "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; }
candidates=("${PYTHON313:-}")
candidates+=("$(command -v python3.13 2>/dev/null || true)")
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}(\.[0-9]+)?$" | sort -rV); do
    candidates+=("$(PYENV_VERSION="$v" pyenv which python3 2>/dev/null || true)")
  done
fi
candidates+=("$(command -v python3 2>/dev/null || true)")
for c in "${candidates[@]}"; do
  if check "$c"; then echo "$c"; exit 0; fi
done
echo "error: Python $want is required (it is the Lambda runtime) but was not found." >&2
echo "       Install it (e.g. 'pyenv install $want', or your OS package) or set PYTHON313=/path/to/python3.13." >&2
exit 1
