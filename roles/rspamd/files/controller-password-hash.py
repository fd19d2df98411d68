#!/usr/bin/python3
"""controller-password-hash: prints the hash of the rspamd controller password for
override.d/worker-controller.inc. Run by the rspamd role (ansible.builtin.script) with
  RSPAMD_PASSWORD  the password
  RSPAMD_CHECK     sha256(hash + password) of the hash the role installed last (empty: none yet)
`rspamadm pw` salts every hash, so hashing on each run would never be idempotent: while the hash on
the host still matches the check value, that hash is printed again; otherwise (a new password, no
check value yet) a new one. The password never goes on a command line (where `ps` shows it to every
local user): `rspamadm pw` reads it from its terminal only, so it gets a pseudo-terminal and the
password is typed at its prompt. Exits 127 when rspamadm is not installed (check mode on a fresh
host).
"""

import hashlib
import os
import pty
import re
import shutil
import sys

CONFIG = "/etc/rspamd/override.d/worker-controller.inc"


def installed_hash() -> str:
    try:
        with open(CONFIG, encoding="utf-8") as config:
            for line in config:
                match = re.fullmatch(r'password = "(.*)";\n?', line)
                if match:
                    return match.group(1)
    except FileNotFoundError:
        pass
    return ""


def new_hash(password: str) -> str:
    """`rspamadm pw --encrypt` on a pseudo-terminal, the password typed at its prompt."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp("rspamadm", ["rspamadm", "pw", "--encrypt"])
    output, typed = b"", False
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        # Typed only once the prompt is shown: rspamadm flushes what was typed before it.
        if not typed and output.rstrip().endswith(b":"):
            os.write(terminal, password.encode() + b"\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    hashes = re.findall(rb"^\$\S+$", output.replace(b"\r", b""), re.MULTILINE)
    if os.waitstatus_to_exitcode(status) != 0 or len(hashes) != 1:
        sys.exit(f"controller-password-hash: rspamadm pw --encrypt failed: "
                 f"{output.decode(errors='replace').strip()[-200:]}")
    return hashes[0].decode()


def main() -> None:
    password = os.environ.get("RSPAMD_PASSWORD", "")
    if not password:
        sys.exit("controller-password-hash: RSPAMD_PASSWORD is empty")
    check = os.environ.get("RSPAMD_CHECK", "")
    current = installed_hash()
    if current and check and hashlib.sha256((current + password).encode()).hexdigest() == check:
        print(current)
        return
    if shutil.which("rspamadm") is None:
        sys.exit(127)
    print(new_hash(password))


if __name__ == "__main__":
    main()
