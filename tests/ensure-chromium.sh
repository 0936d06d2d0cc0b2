#!/usr/bin/env bash
# Make /usr/bin/chromium available for the browser end-to-end tests (client/e2e): Debian's own
# package, installed with apt when missing. Never a browser build downloaded by a test tool.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ ! -x "$CHROMIUM" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; install Debian's chromium package" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: $CHROMIUM is missing; run as root (or: sudo apt-get install chromium)" >&2
    exit 1
  fi
  echo "ensure-chromium: installing Debian's chromium package"
  log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "ensure-chromium: apt-get could not install chromium (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "ensure-chromium: the chromium package is installed but $CHROMIUM is not there" >&2
  exit 1
fi

if ! version=$("$CHROMIUM" --headless=new --no-sandbox --version 2>/dev/null); then
  echo "ensure-chromium: $CHROMIUM is installed but does not start" >&2
  exit 1
fi
echo "ensure-chromium: $version ($CHROMIUM)"
