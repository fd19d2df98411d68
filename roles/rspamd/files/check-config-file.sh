#!/bin/bash
# check-config-file PATH CANDIDATE
# The `validate:` of the rspamd role's configuration files: CANDIDATE is to become
# /etc/rspamd/PATH (e.g. local.d/actions.conf). Two copies of /etc/rspamd go through
# `rspamadm configtest --strict` in parallel: the live one, and one with the candidate in place.
# The candidate is refused when it adds an error to those the live configuration already has.
# "cannot find dependency on symbol" is not counted: turning a module off (offline mode,
# rspamd__disabled_modules) leaves other symbols' dependencies dangling, which rspamd only logs.
# The new errors go to stderr (with the scratch paths shown as /etc/rspamd).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 PATH CANDIDATE" >&2
  exit 2
fi
path=$1
candidate=$2
case /$path/ in
  */../* | //) echo "$0: PATH must be relative to /etc/rspamd, got '$path'" >&2; exit 2 ;;
esac
case $path in
  /*) echo "$0: PATH must be relative to /etc/rspamd, got '$path'" >&2; exit 2 ;;
esac

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# configtest COPY: the sorted, distinct errors of the configuration in $dir/COPY, in $dir/COPY.errors.
configtest() {
  local conf=$dir/$1
  { rspamadm --var=CONFDIR="$conf" --var=LOCAL_CONFDIR="$conf" configtest -s -c "$conf/rspamd.conf" 2>&1 >/dev/null || true; } \
    | { grep -v '^cannot find dependency on symbol ' || true; } \
    | sed "s|$conf|/etc/rspamd|g" | sort -u > "$dir/$1.errors"
}

cp -a /etc/rspamd "$dir/live"
cp -a /etc/rspamd "$dir/new"
mkdir -p "$(dirname "$dir/new/$path")"
cp "$candidate" "$dir/new/$path"
configtest live &
configtest new &
wait
if comm -13 "$dir/live.errors" "$dir/new.errors" | grep . >&2; then
  exit 1
fi
