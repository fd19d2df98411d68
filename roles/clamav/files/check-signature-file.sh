#!/bin/sh
# check-signature-file CANDIDATE NAME
# The `validate:` of the clamav role's custom signature files: loads CANDIDATE as the signature
# database NAME with clamscan and fails when clamscan cannot load it. clamscan picks the parser by
# the file's extension (.ndb, .hdb, .ldb, ...), so the candidate is copied under its real name into
# a scratch directory, and an empty file is scanned with it. clamscan exits 0 (clean) or 1 (found)
# when the database loaded, 2 on an error.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 CANDIDATE NAME" >&2
  exit 2
fi
candidate=$1
name=$2
case $name in
  */* | "" | . | ..) echo "$0: NAME must be a plain file name, got '$name'" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$candidate" "$dir/$name"
: > "$dir/empty"
rc=0
clamscan --quiet --database="$dir/$name" "$dir/empty" || rc=$?
[ "$rc" -lt 2 ]
