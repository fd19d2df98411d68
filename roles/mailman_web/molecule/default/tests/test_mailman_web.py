"""roles/mailman_web on two nodes against a real Mailman core: each node's uwsgi answers the proxy's
requests (spoken here in the uwsgi protocol, as nginx does) with Postorius' and HyperKitty's pages
filled from core; one node runs the task cluster, the periodic jobs and the shared memcached; both
have the same settings and static files, and so has the proxy. Through the proxy, in headless
Chromium (screenshots under .cache/screenshots/mailman_web/ of the repository): the lists page, and a
post the client hands to core's port 25, archived through the proxy and shown by HyperKitty."""

import json
import pathlib
import re
import time
import uuid

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import host

SITE = "lists.web.test"
NODES = {"mweb-node1": "172.31.35.21", "mweb-node2": "172.31.35.22"}
testinfra_hosts = ["docker://mweb-core"]

# Runs on the core host, which stands for the proxy: one request to a node's uwsgi socket in the uwsgi
# protocol (a 4-byte header, then the CGI variables), printing the status line and the body as JSON.
UWSGI_GET = r"""
import json, socket, struct, sys
address, path, site = sys.argv[1], sys.argv[2], sys.argv[3]
env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": site,
       "SERVER_PORT": "443", "HTTP_HOST": site, "SERVER_PROTOCOL": "HTTP/1.1", "HTTPS": "on",
       "HTTP_X_FORWARDED_PROTO": "https", "REMOTE_ADDR": "172.31.35.10", "REQUEST_URI": path}
body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                for k, v in env.items())
s = socket.create_connection((address, 8000), timeout=60)
s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, page = data.partition(b"\r\n\r\n")
print(json.dumps({"status": head.split(b"\r\n")[0].decode(), "body": page.decode(errors="replace")}))
"""


def get(node, path):
    return json.loads(
        host("mweb-core").check_output("python3 -c %s %s %s %s", UWSGI_GET, NODES[node], path, SITE)
    )


@pytest.mark.parametrize("node", sorted(NODES))
def test_postorius_lists_the_list_of_mailman_core(node):
    page = get(node, "/postorius/lists/")
    assert page["status"].endswith("200 OK"), page["status"]
    assert "dev@lists.web.test" in page["body"] or "Developers" in page["body"], page["body"][:2000]


@pytest.mark.parametrize("node", sorted(NODES))
def test_hyperkitty_answers(node):
    page = get(node, "/hyperkitty/")
    assert page["status"].endswith("200 OK"), page["status"]
    assert "HyperKitty" in page["body"]


def test_an_unknown_host_name_is_refused():
    out = json.loads(
        host("mweb-core").check_output("python3 -c %s %s / evil.test", UWSGI_GET, NODES["mweb-node2"])
    )
    assert out["status"].endswith("400 Bad Request"), out["status"]


def test_the_task_cluster_the_jobs_and_the_cache_run_on_the_task_node_only():
    node1, node2 = host("mweb-node1"), host("mweb-node2")
    # [m]: the pattern must not match the shell that runs pgrep.
    assert node1.run("pgrep -f '[m]anage.py qcluster'").rc == 0
    assert node2.run("pgrep -f '[m]anage.py qcluster'").rc == 1
    assert "runjobs minutely" in node1.file("/etc/cron.d/mailman3-web").content_string
    assert "runjobs minutely" not in node2.file("/etc/cron.d/mailman3-web").content_string
    assert node1.socket("tcp://172.31.35.21:11211").is_listening
    assert not node2.package("memcached").is_installed
    # ...and node2 uses it.
    settings = node2.file("/etc/mailman3/mailman-web.py").content_string
    assert "'LOCATION': '172.31.35.21:11211'" in settings


def test_both_nodes_and_the_proxy_have_the_same_static_files_and_the_nodes_the_same_settings():
    digest = (
        "cd /var/lib/mailman3/web/static && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
    )
    node1, node2 = host("mweb-node1"), host("mweb-node2")
    proxy = host("mweb-proxy").check_output(
        digest.replace("/var/lib/mailman3/web/static", "/var/www/mailman3-static")
    )
    assert node1.check_output(digest) == node2.check_output(digest) == proxy
    assert (
        node1.file("/etc/mailman3/mailman-web.py").sha256sum
        == node2.file("/etc/mailman3/mailman-web.py").sha256sum
    )


def restarts() -> dict[str, tuple[int, int]]:
    """Each node's last mailman3-web start: (began, ready), on the kernel's monotonic clock, which the
    containers share."""
    times = {}
    for node in NODES:
        shown = host(node).check_output(
            "systemctl show mailman3-web -P InactiveExitTimestampMonotonic -P ActiveEnterTimestampMonotonic"
        ).split()
        times[node] = (int(shown[0]), int(shown[1]))
    return times


def test_a_changed_setting_restarts_the_nodes_one_at_a_time():
    """Both nodes restart for a uwsgi change, the second only once the first is serving again."""
    before = restarts()
    converge = pathlib.Path(__file__).resolve().parents[1] / "converge.yml"
    try:
        run = ansible_playbook(converge, "--limit", "web", extra={"mailman_web__uwsgi_processes": 3})
        assert run.returncode == 0, run.stdout
        after = restarts()
        assert all(after[node] != before[node] for node in NODES), (before, after)
        first, second = sorted(after.values())
        assert first[1] <= second[0], f"the restarts overlap: {after}"
    finally:
        back = ansible_playbook(converge, "--limit", "web")
        assert back.returncode == 0, back.stdout
    for node in NODES:
        assert "processes = 3" not in host(node).check_output("cat /etc/mailman3/uwsgi.ini")


@pytest.mark.parametrize("node", sorted(NODES))
def test_uwsgi_listens_on_the_nodes_address_only(node):
    listening = host(node).check_output("ss -Hltn 'sport = :8000'")
    assert [line.split()[3] for line in listening.splitlines()] == [f"{NODES[node]}:8000"]


# ---------------------------------------------------------------------------------------------
# Through the proxy, in a browser

CLIENT = host("mweb-client")
SHOTS = pathlib.Path(__file__).resolve().parents[4] / ".cache" / "screenshots" / "mailman_web"
# What Django, uwsgi and nginx answer instead of a page.
ERROR_MARKERS = (
    "Server Error",
    "Bad Request",
    "Bad Gateway",
    "504 Gateway",
    "Not Found",
    "Something went wrong",
    "Service Unavailable",
    "This site can",
    "ERR_",
)
SEND = r"""
import smtplib, sys
subject = sys.argv[1]
msg = (f"From: alice@example.test\r\nTo: dev@lists.web.test\r\nSubject: {subject}\r\n"
       f"Message-ID: <{subject}@example.test>\r\n\r\nHello list, this is {subject}.\r\n")
with smtplib.SMTP("172.31.35.10", 25, timeout=30) as s:
    s.sendmail("alice@example.test", ["dev@lists.web.test"], msg)
"""


def browse(url, name, budget=None):
    """Load url in headless Chromium on the client, save a screenshot, return the DOM; fail on errors."""
    flags = (
        "--headless --no-sandbox --disable-gpu --ignore-certificate-errors --hide-scrollbars "
        "--window-size=1280,1024"
    )
    if budget:  # let the page's own requests finish (HyperKitty loads its thread lists with JavaScript)
        flags += f" --virtual-time-budget={budget}"
    shot = f"/tmp/{name}.png"
    CLIENT.run("rm -f %s", shot)
    dom = CLIENT.check_output(f"chromium {flags} --screenshot={shot} --dump-dom %s 2>/dev/null", url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"{name}.png").write_bytes(CLIENT.file(shot).content)
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title, f"{url}: no title in\n{dom[:2000]}"
    for marker in ERROR_MARKERS:
        assert marker not in title.group(1), f"{url}: error page ({title.group(1).strip()})"
    assert "Postorius" in dom or "HyperKitty" in dom, f"{url}: not a Mailman page\n{dom[:2000]}"
    return dom


def test_the_lists_page_in_a_browser_lists_the_list_under_the_sites_name():
    dom = browse(f"https://{SITE}/postorius/lists/", "postorius-lists")
    assert f"dev@{SITE}" in dom
    assert "example.com" not in dom  # the site's name is the data's, not the package's


def test_a_post_is_archived_through_the_proxy_and_shown_by_hyperkitty_in_a_browser():
    subject = f"archived-{uuid.uuid4().hex[:10]}"
    CLIENT.check_output("python3 -c %s %s", SEND, subject)
    archive = f"https://{SITE}/hyperkitty/list/dev@{SITE}/"
    deadline = time.monotonic() + 180
    # The fragment HyperKitty's list page loads, filled from the cache the task node rebuilds.
    while subject not in CLIENT.run("curl -sk %s", archive + "recent-threads").stdout:
        assert time.monotonic() < deadline, f"{subject} was not archived within 180 s"
        time.sleep(3)
    dom = browse(archive, "hyperkitty-list", budget=10000)
    assert subject in dom, f"{subject} not on {archive}"
