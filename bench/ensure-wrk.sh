#!/usr/bin/env bash
# Make /usr/bin/wrk available as the load generator of `make bench`: Debian's own package, installed
# with apt when missing (never a build downloaded by the bench itself).
set -euo pipefail

WRK=/usr/bin/wrk

if [ ! -x "$WRK" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "ensure-wrk: $WRK is missing and apt-get is not available; install Debian's wrk package" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-wrk: $WRK is missing; run as root (or: sudo apt-get install wrk)" >&2
    exit 1
  fi
  echo "ensure-wrk: installing Debian's wrk package"
  log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "ensure-wrk: apt-get could not install wrk (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

if [ ! -x "$WRK" ]; then
  echo "ensure-wrk: the wrk package is installed but $WRK is not there" >&2
  exit 1
fi
# wrk has no --version; its usage line names the version.
echo "ensure-wrk: $("$WRK" -v 2>&1 | head -n1) ($WRK)"
