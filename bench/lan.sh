#!/usr/bin/env bash
# LAN benchmark: drive-node and Syncthing side by side, in one run, on a
# two-host network-namespace LAN whose links are shaped to 1 Gbit/s.
# Needs root (network namespaces) and Debian's syncthing and iperf3
# (and exfat-fuse and exfatprogs for -lan.exfat).
# Prints one table with both tools' figures and their ratio (and, for the
# delta figures, a second table by link speed and change).
# -lan.only=edit,big,small,catchup,restore,many,delta picks figure groups;
# -lan.tools=drive-node (or Syncthing) one tool.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v syncthing >/dev/null || need+=(syncthing)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v tc >/dev/null || need+=(iproute2)
# -lan.exfat puts host B's folder on an exFAT disk: a loop file made with
# mkfs.exfat and mounted with exfat-fuse.
for arg in "$@"; do
  case $arg in
  -lan.exfat | --lan.exfat | -lan.exfat=true | --lan.exfat=true)
    command -v mkfs.exfat >/dev/null || need+=(exfatprogs)
    command -v mount.exfat-fuse >/dev/null || need+=(exfat-fuse)
    ;;
  esac
done
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec go test -run '^$' -bench BenchmarkLAN -benchtime 1x -timeout 90m -v ./bench/ "$@"
