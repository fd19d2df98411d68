#!/bin/sh
# mailman-queue: what waits in Mailman's queues (roles/mailman_core; used by playbooks/failover.yml and
# the end-to-end suite). Runners rename a .pck to .bak while they work on it: both count as waiting.
# shunt and bad hold what Mailman gave up on and are left out (they wait for an administrator).
#   mailman-queue count            the number of messages waiting, over every queue
#   mailman-queue list             QUEUE COUNT for each queue that holds something, shunt and bad included
#   mailman-queue wait SECONDS     until nothing waits (at most SECONDS); print the count; exit 1 if any
set -eu
queue=${MAILMAN_QUEUE_DIR:-/var/lib/mailman3/queue}
[ -d "$queue" ] || { echo "mailman-queue: no queue directory $queue" >&2; exit 1; }

waiting() {
  find "$queue" -type f \( -name '*.pck' -o -name '*.bak' \) -not -path "$queue/shunt/*" -not -path "$queue/bad/*" |
    wc -l
}

case "${1:-}" in
  count)
    waiting
    ;;
  list)
    for dir in "$queue"/*/; do
      n=$(find "$dir" -type f \( -name '*.pck' -o -name '*.bak' \) | wc -l)
      [ "$n" -eq 0 ] || echo "$(basename "$dir") $n"
    done
    ;;
  wait)
    [ $# -eq 2 ] && [ "$2" -ge 0 ] 2>/dev/null || { echo "usage: mailman-queue wait SECONDS" >&2; exit 2; }
    end=$(( $(date +%s) + $2 ))
    while [ "$(waiting)" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do sleep 2; done
    left=$(waiting)
    echo "$left"
    [ "$left" -eq 0 ] || { echo "mailman-queue: $left messages still waiting after $2 s" >&2; exit 1; }
    ;;
  *)
    echo "usage: mailman-queue count|list|wait SECONDS" >&2
    exit 2
    ;;
esac
