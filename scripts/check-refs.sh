#!/usr/bin/env bash
# check-refs.sh: the repository explains itself (run by lint.sh).
#  1. No tracked file refers to the notes directory that sits next to the
#     repository (the "shared" directory beside it, by a relative path or
#     under /work): what the code relies on is written down here, in docs/
#     (docs/protocols/ for the protocols and the hardware).
#  2. Every docs/protocols/<name>.md that a tracked source, script,
#     document or config cites exists.
# Prints file:line for each offence and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# The directory name is spliced in so that this file does not match itself.
d=shared
if hits=$(git grep -nIE -e "\.\./$d" -e "/work/$d" -- .); then
	echo "references outside the repository (write the facts into docs/ and cite that):"
	echo "$hits"
	fail=1
fi

missing=""
while IFS= read -r hit; do
	# hit is file:line:docs/protocols/<name>.md
	doc=${hit#*:*:}
	[ -f "$doc" ] || missing+="$hit"$'\n'
done < <(git grep -noIE 'docs/protocols/[A-Za-z0-9_.-]+\.md' -- '*.go' '*.sh' '*.md' '*.yaml' 'Makefile' || true)
if [ -n "$missing" ]; then
	echo "cited docs/protocols files that do not exist:"
	printf '%s' "$missing"
	fail=1
fi
exit $fail
