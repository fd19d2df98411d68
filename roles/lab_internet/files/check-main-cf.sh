#!/bin/sh
# check-main-cf CANDIDATE
# The `validate:` of the sink's main.cf: the real postconf reads the candidate next to the live
# master.cf, in a scratch directory; any warning (unknown parameter, bad value) refuses it.
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 CANDIDATE" >&2
  exit 2
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$1" "$dir/main.cf"
cp /etc/postfix/master.cf "$dir/"
rc=0
out=$(postconf -c "$dir" -n 2>&1 >/dev/null) || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  exit 1
fi
