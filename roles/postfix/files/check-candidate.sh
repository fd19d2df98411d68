#!/bin/bash
# check-candidate NAME STAGED LIVE: the real Postfix reads the candidate configuration of instance
# NAME in STAGED (postconf -n, -M, -P, postfix check); any warning or error refuses it, naming the
# instance, and the live configuration in LIVE is left alone. Prints restart=yes when a parameter
# that a reload cannot change (inet_interfaces, inet_protocols) differs from LIVE, else restart=no.
set -u -o pipefail
[ $# -eq 3 ] || { echo "usage: check-candidate NAME STAGED LIVE" >&2; exit 2; }
name=$1 staged=$2 live=$3
out=$( { postconf -c "$staged" -n >/dev/null && postconf -c "$staged" -M >/dev/null \
         && postconf -c "$staged" -P >/dev/null && postfix -c "$staged" check; } 2>&1 )
rc=$?
if [ "$rc" -ne 0 ] || grep -Eq '(warning|fatal|error):' <<<"$out"; then
  printf 'postfix: instance %s: the candidate configuration in %s was refused (live config untouched):\n%s\n' \
    "$name" "$staged" "$out" >&2
  exit 1
fi
restart=no
for p in inet_interfaces inet_protocols; do
  [ "$(postconf -c "$staged" -h "$p")" = "$(postconf -c "$live" -h "$p" 2>/dev/null)" ] || restart=yes
done
echo "restart=$restart"
