#!/usr/bin/env bash
# Installs everything ledgercrm needs into this checkout: a Python virtualenv (.venv) with the
# project and its dev tools, the npm toolchain (solc-js, OpenZeppelin, anvil, cast) from the lock file, and
# Debian's chromium for the browser tests (Playwright's own browser download needs the internet).
# Safe to run again: it only does what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ledgercrm-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # compat mode puts the checkout on sys.path, so packages added later need no reinstall
  .venv/bin/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
  touch "$stamp"
fi
# The project's own bytecode, as a regular (non-editable) install would have it: an editable install leaves
# it to the first run, and where PYTHONDONTWRITEBYTECODE is set (as in these machines' environment) every
# process compiled every project module it imported from source, every time (~0.17 CPU s of a `score
# --all`, measured: benchmarks/README.md). Only what changed since is compiled again (a second run: ~0.1
# CPU s); a module edited later is read from its source until then, as before.
.venv/bin/python -m compileall -q -j 0 api ledger offchain ml >/dev/null

if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm is missing; installing Node.js with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
# The lock file's hash, kept inside node_modules, says whether the install is current: a fresh checkout's files
# are all newer than an install, so comparing times would run `npm ci` (which empties node_modules first) in
# every new clone or worktree, including one whose node_modules is a shared install.
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ "$(cat node_modules/.ledgercrm-lock 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.ledgercrm-lock
fi

# The browser tests drive Debian's chromium through Playwright; `playwright install` downloads its own
# browser from the internet, which these machines do not reach, so it is never run.
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: /usr/bin/chromium is missing; installing Debian's chromium with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium >/dev/null
fi
