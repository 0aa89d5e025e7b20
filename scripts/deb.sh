#!/usr/bin/env bash
# deb.sh: .deb packages into dist/ with nfpm (CLI pinned to v2.45.2: newer
# releases do not install through our module proxy).
#   scripts/deb.sh               arm64 and armhf (pure Go, GOARM=6: every Pi)
#   scripts/deb.sh amd64         one architecture (the test uses amd64)
# Pure-Go (static) binaries only: the microphone needs the cgo build, which
# would add Depends: libc6 (>= 2.34), libasound2 (docs/protocols/hardware.md
# §5.2).
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM_VERSION=v2.45.2
NFPM=${NFPM:-$(go env GOPATH)/bin/nfpm}
if ! "$NFPM" --version 2>/dev/null | grep -q "${NFPM_VERSION#v}"; then
	echo "installing nfpm $NFPM_VERSION"
	GOBIN=$(dirname "$NFPM") go install github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION
fi
VERSION=${VERSION:-$(git describe --tags --always 2>/dev/null | sed 's/^v//' || echo 0.0.0)}
# A release tag gives 1.2.3; anything else (a bare commit hash, which may
# start with a digit) becomes 0.0.0~git<hash> so it sorts below releases.
[[ $VERSION =~ ^[0-9]+\.[0-9]+ ]] || VERSION=0.0.0~git$VERSION
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || true)
mkdir -p dist build
archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=(arm64 armhf)
for a in "${archs[@]}"; do
	case $a in
	arm64) env=(GOARCH=arm64) nfpm_arch=arm64 ;;
	armhf) env=(GOARCH=arm GOARM=6) nfpm_arch=arm6 ;;
	amd64) env=(GOARCH=amd64) nfpm_arch=amd64 ;;
	*) echo "unknown architecture $a (arm64|armhf|amd64)" >&2; exit 2 ;;
	esac
	env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o build/edge-agent ./cmd/edge-agent
	ARCH=$nfpm_arch VERSION=$VERSION "$NFPM" package --packager deb --config deploy/nfpm.yaml --target dist/
done
ls -l dist/*.deb
