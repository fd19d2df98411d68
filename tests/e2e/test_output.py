"""What the operator's terminal and CI logs keep: the lab's most verbose converge (`scripts/lab ensure
-vvv`, as `make test` and `make e2e` run it; scripts/lab keeps its output in .cache/lab/converge.log)
holds none of the secrets generated under secret/lab and not one list member's address."""

import json
import os
import re
import subprocess

from test_lab import TOP, group

LOG = TOP / ".cache" / "lab" / "converge.log"
SECRET_DIR = TOP / "secret" / "lab"
# Not secrets: the printed zone, the static files the web nodes share, and the controller password's
# check value (a hash of its hash).
NOT_SECRET = re.compile(r"(dns-records\.zone|static\.tar|\.check)$")
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def secrets() -> dict[str, str]:
    """{secret: file}: each password file's password, each private key's base64 lines."""
    found = {}
    for path in sorted(SECRET_DIR.rglob("*")):
        if not path.is_file() or NOT_SECRET.search(path.name):
            continue
        text = path.read_text()
        name = str(path.relative_to(TOP))
        if "-----BEGIN" in text:
            lines = [line for line in text.splitlines() if len(line) >= 40 and "-----" not in line]
            found.update(dict.fromkeys(lines, name))
        else:  # ansible.builtin.password's file: the password, then maybe " salt=..."
            found[text.split()[0]] = name
    return found


def members() -> set[str]:
    """Every regular member of the lab's lists, as the back-ends' inventory data renders them."""
    expression = "{{ mailman_core__lists | map(attribute='members', default=[]) | flatten }}"
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    run = subprocess.run(
        [str(TOP / ".venv" / "bin" / "ansible"), "-i", str(TOP / "inventories" / "lab"),
         group("mailman_core")[0], "-m", "ansible.builtin.debug", "-a", f"msg={expression}"],
        cwd=TOP, env=env, capture_output=True, text=True, check=True)
    hosts = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {address.lower() for address in next(iter(hosts.values()))["msg"]}


def test_a_verbose_converge_prints_no_secret_and_no_member_address(figure):
    assert LOG.exists(), f"{LOG} is missing: converge the lab with `scripts/lab ensure -vvv`"
    log = LOG.read_text(errors="replace")
    header = log.splitlines()[0]
    assert re.search(r" -vvv+\b", header), f"the lab's last whole converge was not run with -vvv: {header}"
    # The log is of a converge that used them: the tasks that handle the secrets and the members ran.
    for task in ("Hash the controller password", "Make domains and lists match the data",
                 "Check the Mailman configuration"):
        named = re.search(rf"(TASK|RUNNING HANDLER) \[(\S+ : )?{re.escape(task)}\]", log)
        assert named, f"{task!r} is not in {LOG}"
    known = secrets()
    assert len(known) >= 10, sorted(set(known.values()))  # passwords, API keys, the DKIM key
    leaked = sorted({name for secret, name in known.items() if secret in log})
    assert leaked == [], f"secrets printed by the converge: {leaked}"

    roster = members()
    assert len(roster) > 10_000, len(roster)
    printed = [(number, address) for number, line in enumerate(log.splitlines(), 1)
               for address in ADDRESS.findall(line) if address.lower() in roster]
    assert printed == [], f"{len(printed)} member addresses printed, first (line, address): {printed[:10]}"
    figure(f"-vvv converge log of {len(log.splitlines()):,} lines: 0 of {len(set(known.values()))} "
           f"secret files, 0 of {len(roster):,} member addresses")
