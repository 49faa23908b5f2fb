#!/usr/bin/env bash
# Builds static, -trimpath drive-node binaries for every supported platform
# into dist/, with a SHA-256 sums file. Usage: scripts/release.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
out=dist
rm -rf "$out"
mkdir -p "$out"
targets=(
  linux/amd64 linux/arm64 "linux/arm GOARM=6" "linux/arm GOARM=7"
  darwin/arm64 darwin/amd64 windows/amd64
)
for t in "${targets[@]}"; do
  platform=${t%% *}
  goos=${platform%/*} goarch=${platform#*/}
  goarm=""
  [[ $t == *GOARM=* ]] && goarm=${t##*GOARM=}
  name="drive-node-$version-$goos-$goarch${goarm:+v$goarm}"
  [[ $goos == windows ]] && name+=.exe
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
    go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$out/$name" ./cmd/drive-node
  echo "built $out/$name"
done
(cd "$out" && sha256sum drive-node-* > SHA256SUMS)
echo "sums in $out/SHA256SUMS"
