#!/usr/bin/env bash
# lint.sh: formatting, vet, the import direction of DESIGN.md
# (cmd → agent → transport/upload → sensors → internal), and that the
# repository explains itself (check-refs.sh: no reference to notes outside
# it, every cited docs/protocols file exists).
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...

mod=$(go list -m)
fail=0
check() { # check <package pattern> <forbidden import prefix>...
	local pkgs=$1; shift
	for p in $(go list "$pkgs"); do
		for bad in "$@"; do
			if go list -f '{{join .Imports "\n"}}' "$p" | grep -q "^$mod/$bad"; then
				echo "import direction: $p imports $mod/$bad"; fail=1
			fi
		done
	done
}
check ./sensors/... transport upload agent cmd
check ./upload/... transport agent cmd
check ./transport/... agent cmd
check ./internal/... sensors transport upload agent cmd
scripts/check-refs.sh || fail=1
[ $fail -eq 0 ] || exit 1
echo "lint ok"
