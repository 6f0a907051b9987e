#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only those missing, with apt-get.
# Called by `make venv`; without root (and without sudo) it prints what to install and goes on,
# and the tests that need a package skip with that reason.
set -u
PACKAGES=(graphviz openssh-server openssh-client chromium)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get here; install these for the full test suite: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: not root; install these for the full test suite: ${missing[*]}" >&2
    exit 0
  fi
fi
echo "Installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "note: apt-get could not install ${missing[*]}; tests needing them will skip" >&2
