#!/bin/sh
# check-pcre-map CANDIDATE
# The `validate:` of the sink's pcre map: postmap parses the whole map on a lookup and reports a bad
# pattern on stderr (the lookup itself still succeeds), so any output refuses the candidate.
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 CANDIDATE" >&2
  exit 2
fi
out=$(postmap -q probe@invalid "pcre:$1" 2>&1)
if [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  exit 1
fi
