#!/bin/sh
# refuse-queued NAME=CONFIG_DIR...: the instances the postfix role is about to remove (state: absent)
# must hold no mail, or their queue would be destroyed. An instance whose config directory is gone
# has nothing left to lose. Prints the instances that hold mail and exits 1; a postqueue that fails
# fails the check (it never reads as an empty queue).
set -eu
refused=""
for pair in "$@"; do
  name=${pair%%=*} dir=${pair#*=}
  [ -d "$dir" ] || continue
  out=$(postqueue -c "$dir" -j) || { echo "postfix: postqueue -c $dir -j failed" >&2; exit 1; }
  count=$(printf '%s\n' "$out" | grep -c '^{' || true)
  [ "$count" -eq 0 ] || refused="$refused${refused:+; }instance '$name' ($count queued message(s), see postqueue -c $dir -p)"
done
if [ -n "$refused" ]; then
  echo "postfix: removing $refused (state: absent) would destroy its queue; nothing was changed. Drain it" \
    "first (postqueue -c DIR -f until postqueue -c DIR -p is empty; held mail: postsuper -c DIR -H ALL)," \
    "or set postfix__destroy_queued_mail: true to discard the mail." >&2
  exit 1
fi
