#!/usr/bin/env bash
# Installs what the tests need on Debian or Ubuntu, only where it is missing: redis-server and
# redis-sentinel (Redis 7.0 or newer; the tests start their own servers on free loopback ports
# and never touch one they did not start), redis-cli (cluster creation), openssl (test CA) and
# chromium (the dashboard test drives it headless through playwright-core).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

version=$(redis-server --version | sed -E 's/.*v=([0-9]+)\.([0-9]+).*/\1 \2/')
read -r major minor <<<"$version"
if [ "$major" -lt 7 ]; then
  echo "redis-server $major.$minor is too old: gatehouse needs Redis 7.0 or newer" >&2
  exit 1
fi
echo "redis-server $major.$minor, $(openssl version)"
