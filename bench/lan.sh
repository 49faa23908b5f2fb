#!/usr/bin/env bash
# LAN benchmark: drive-node and Syncthing side by side, in one run, on a
# two-host network-namespace LAN whose links are shaped to 1 Gbit/s.
# Needs root (network namespaces) and Debian's syncthing and iperf3.
# Prints one table with both tools' figures and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v syncthing >/dev/null || need+=(syncthing)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v tc >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec go test -run '^$' -bench BenchmarkLAN -benchtime 1x -timeout 60m -v ./bench/ "$@"
