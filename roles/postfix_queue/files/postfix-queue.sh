#!/bin/sh
# postfix-queue: the Postfix queue operations of mailstack's lifecycle playbooks (roles/postfix_queue),
# on the host's default instance, in one tested program instead of shell inside YAML.
#   postfix-queue count-deferred       the number of deferred messages of every instance of the host
#                                      (0 where Postfix is not installed yet)
#   postfix-queue wait-deferred MAX SECONDS
#                                      wait until that number is MAX or less (at most SECONDS); print
#                                      it; exit 1 when it is still above MAX
#   postfix-queue list                 the queue IDs of the default instance's queue, one a line
#   postfix-queue drain SECONDS        deliver what is queued: flush, then wait until the queue is empty
#                                      or SECONDS have passed; print the queue IDs still queued
#   postfix-queue hold                 put every queued message on hold (Postfix must be stopped: nothing
#                                      in flight); print the held queue IDs
#   postfix-queue pack FILE            the hold queue's files into the tar FILE (owner and mode kept), mode 0600
#   postfix-queue adopt FILE...        unpack each tar into the hold queue, refusing to replace a file;
#                                      rename the files for this host (postsuper -s), release and deliver them
#   postfix-queue forget               delete every held message (the heir has them)
# Exit status: 0, or 1 with a message on stderr; a usage error is 2.
set -eu
spool=${POSTFIX_QUEUE_SPOOL:-/var/spool/postfix}

die() { echo "postfix-queue: $*" >&2; exit 1; }
queue_ids() { postqueue -j | sed -n 's/.*"queue_id": *"\([^"]*\)".*/\1/p'; }

case "${1:-}" in
  count-deferred)
    # A host without Postfix yet (a new relay before its first run) has nothing queued. Otherwise
    # postmulti runs postqueue for every instance; a failure of any instance fails the count.
    command -v postmulti >/dev/null || { echo 0; exit 0; }
    out=$(postmulti -x postqueue -j) || die "postqueue -j failed"
    printf '%s\n' "$out" | grep -c '"queue_name": *"deferred"' || true
    ;;
  wait-deferred)
    [ $# -eq 3 ] && [ "$2" -ge 0 ] 2>/dev/null && [ "$3" -ge 0 ] 2>/dev/null ||
      { echo "usage: postfix-queue wait-deferred MAX SECONDS" >&2; exit 2; }
    end=$(( $(date +%s) + $3 ))
    while count=$("$0" count-deferred) && [ "$count" -gt "$2" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    echo "$count"
    [ "$count" -le "$2" ] || die "$count deferred messages after $3 s (at most $2 wanted)"
    ;;
  list)
    queue_ids
    ;;
  drain)
    [ $# -eq 2 ] && [ "$2" -ge 0 ] 2>/dev/null || { echo "usage: postfix-queue drain SECONDS" >&2; exit 2; }
    postqueue -f
    end=$(( $(date +%s) + $2 ))
    while [ -n "$(postqueue -j)" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
    queue_ids
    ;;
  hold)
    postsuper -h ALL 2>/dev/null
    find "$spool/hold" -type f -printf '%f\n'
    ;;
  pack)
    [ $# -eq 2 ] || { echo "usage: postfix-queue pack FILE" >&2; exit 2; }
    umask 077
    # tar itself: the queue files keep owner and mode, and adopt must refuse to replace a file.
    tar -C "$spool/hold" -cpf "$2" .
    ;;
  adopt)
    [ $# -ge 2 ] || { echo "usage: postfix-queue adopt FILE..." >&2; exit 2; }
    shift
    for file in "$@"; do
      tar -C "$spool/hold" --keep-old-files -xpf "$file" || die "$file: a queue file of that name is already here"
    done
    # A queue file's name encodes its inode: rename the moved files for this host ("necessary after
    # restoring a mail queue from a different machine", postsuper(1)), release and deliver them.
    postsuper -s
    postsuper -H ALL
    postqueue -f
    ;;
  forget)
    postsuper -d ALL hold
    ;;
  *)
    echo "usage: postfix-queue count-deferred|wait-deferred MAX SECONDS|list|drain SECONDS|hold|pack FILE|adopt FILE...|forget" >&2
    exit 2
    ;;
esac
