#!/bin/bash
# One measured run of bench/smtp_acceptance.py, inside the benchmark container:
#   run-cell.sh [-d] PORT MESSAGES SESSIONS BYTES RCPTS QUEUE_DIR|- UNIT...
# Reads the CPU time of each systemd UNIT (cgroup cpu.stat usage_usec), sends MESSAGES with
# smtp-source to 127.0.0.1:PORT, waits until the instance's queue (QUEUE_DIR; '-' for none) is
# empty, i.e. every message was relayed, and reads the CPU times again. smtp-source opens one
# connection per message, or with -d keeps each session's connection for all its messages. Prints one
# "key value..." line per fact (bench/benchlib.py: parse_cell); smtp-source's error output
# follows as "stderr <line>" lines.
set -u -o pipefail
keep=()
if [ "${1:-}" = -d ]; then keep=(-d); shift; fi
if [ $# -lt 7 ]; then
  echo "usage: $0 [-d] PORT MESSAGES SESSIONS BYTES RCPTS QUEUE_DIR|- UNIT..." >&2
  exit 2
fi
port=$1 messages=$2 sessions=$3 bytes=$4 rcpts=$5 queue=$6
shift 6
units=("$@")

cpu_file() {  # cpu_file UNIT: the unit's cpu.stat (pure cgroup v2, or the unified part of hybrid)
  local cg
  cg=$(systemctl show -P ControlGroup "$1")
  if [ -z "$cg" ]; then echo "run-cell: unit $1 has no cgroup (not running?)" >&2; exit 2; fi
  if [ -f "/sys/fs/cgroup$cg/cpu.stat" ]; then echo "/sys/fs/cgroup$cg/cpu.stat"
  else echo "/sys/fs/cgroup/unified$cg/cpu.stat"; fi
}
files=()
for unit in "${units[@]}"; do files+=("$(cpu_file "$unit")") || exit 2; done

cpu() {  # cpu WHEN: one "cpu WHEN UNIT usage_usec" line per unit
  local i usage
  for i in "${!units[@]}"; do
    usage=$(awk '$1 == "usage_usec" { print $2 }' "${files[$i]}")
    echo "cpu $1 ${units[$i]} $usage"
  done
}
queued() {  # queued: the first file in the instance's queue, if any
  find "$queue"/maildrop "$queue"/incoming "$queue"/active "$queue"/deferred "$queue"/hold \
    -type f -print -quit 2>/dev/null
}

echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
cpu before
start=$EPOCHREALTIME
errors=$(smtp-source "${keep[@]}" -s "$sessions" -m "$messages" -l "$bytes" -r "$rcpts" \
  -f bench@bench.test -t rcpt@bench.test "127.0.0.1:$port" 2>&1 >/dev/null)
rc=$?
accepted=$EPOCHREALTIME
drained=$accepted
if [ "$queue" != - ]; then
  deadline=$((${accepted%.*} + 300))
  while [ -n "$(queued)" ]; do
    if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
      echo "stderr run-cell: the queue $queue did not drain in 300 s"
      rc=124
      break
    fi
    sleep 0.02
  done
  drained=$EPOCHREALTIME
fi
cpu after
echo "times $start $accepted $drained"
echo "rc $rc"
echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$errors" ]; then
  while IFS= read -r line; do echo "stderr $line"; done <<<"$errors"
fi
