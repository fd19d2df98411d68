#!/bin/bash
# controller-password-hash: prints the hash of the rspamd controller password for
# override.d/worker-controller.inc. Run by the rspamd role (ansible.builtin.script) with
#   RSPAMD_PASSWORD  the password
#   RSPAMD_CHECK     sha256(hash + password) of the hash the role installed last (empty: none yet)
# `rspamadm pw` salts every hash, so hashing on each run would never be idempotent: while the hash
# on the host still matches the check value, that hash is printed again; otherwise (a new password,
# no check value yet) a new one. Exits 127 when rspamadm is not installed (check mode on a fresh host).
set -euo pipefail
: "${RSPAMD_PASSWORD:?}" "${RSPAMD_CHECK=}"
file=/etc/rspamd/override.d/worker-controller.inc
hash=$(sed -n 's/^password = "\(.*\)";$/\1/p' "$file" 2>/dev/null || true)
if [ -n "$hash" ] && [ -n "$RSPAMD_CHECK" ] \
   && [ "$(printf '%s%s' "$hash" "$RSPAMD_PASSWORD" | sha256sum | cut -d' ' -f1)" = "$RSPAMD_CHECK" ]; then
  printf '%s\n' "$hash"
else
  rspamadm pw --encrypt -p "$RSPAMD_PASSWORD"
fi
