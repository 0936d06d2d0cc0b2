#!/usr/bin/env bash
# Make promtool and prometheus available for the alert-rule tests (deploy/prometheus) and the
# integration test that runs a real Prometheus against the service: Debian's own `prometheus`
# package, installed with apt when missing, the way tests/ensure-chromium.sh installs Chromium.
set -euo pipefail

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "ensure-prometheus: promtool/prometheus are missing and apt-get is not available; install Debian's prometheus package" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-prometheus: promtool/prometheus are missing; run as root (or: sudo apt-get install prometheus)" >&2
    exit 1
  fi
  echo "ensure-prometheus: installing Debian's prometheus package"
  log=$(mktemp)
  # --no-install-recommends: the node exporter and friends are not needed; the package's service is
  # never started by these tests (policy-rc.d-less containers do not start it either).
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "ensure-prometheus: apt-get could not install prometheus (output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

if ! version=$(promtool --version 2>&1 | head -n1); then
  echo "ensure-prometheus: promtool is installed but does not run" >&2
  exit 1
fi
echo "ensure-prometheus: $version ($(command -v promtool), $(command -v prometheus))"
