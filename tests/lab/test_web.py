"""The web side of a running lab (`make lab-test`), seen from the lab's internet host: the proxy's
public name resolves in the lab DNS, Postorius lists the lab's lists over HTTPS, a post sent over
SMTP is archived and shown by HyperKitty, and plain HTTP redirects to HTTPS. The browser checks
(Chromium, testssl, a stopped web node, the login limit) are in the molecule/web scenario.
"""

import json
import shlex
import time
import uuid

from test_lab import HOSTVARS, group, lab_host
from test_relays import delete, internet, post, wait_copies

SITE = "lists.lab.mailstack.test"
PROXY = group("proxy")[0]

FETCH = r"""
import json, ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the lab's self-signed certificate


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
try:
    r = opener.open(sys.argv[1], timeout=60)
    print(json.dumps({"status": r.status, "body": r.read().decode(errors="replace"), "location": None}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode(errors="replace"),
                      "location": e.headers.get("Location")}))
"""


def fetch(url: str) -> dict:
    out = internet().check_output(f"python3 -c {shlex.quote(FETCH)} {shlex.quote(url)}")
    return json.loads(out)


def test_the_public_name_resolves_to_the_proxy():
    got = internet().check_output(f"getent hosts {SITE}").split()[0]
    assert got == HOSTVARS[PROXY]["mailstack__address"]


def test_plain_http_redirects_to_https():
    page = fetch(f"http://{SITE}/postorius/lists/")
    assert page["status"] == 301
    assert page["location"] == f"https://{SITE}/postorius/lists/"


def test_postorius_lists_the_lab_lists():
    page = fetch(f"https://{SITE}/postorius/lists/")
    print(f"https://{SITE}/postorius/lists/: {page['status']}, {len(page['body'])} bytes")
    assert page["status"] == 200
    for name in ("announce@lists.mailstack.test", "bulk@lists.mailstack.test"):
        assert name in page["body"]


def test_a_post_is_archived_and_shown_by_hyperkitty():
    token = f"archive-{uuid.uuid4().hex[:10]}"
    post("announce@lists.mailstack.test", token)
    files = wait_copies(token, 4)
    url = f"https://{SITE}/hyperkitty/list/announce@lists.mailstack.test/latest"
    try:
        deadline = time.monotonic() + 180
        page = fetch(url)
        while token not in page["body"] and time.monotonic() < deadline:
            time.sleep(3)
            page = fetch(url)
        found = "found" if token in page["body"] else "missing"
        print(f"{url}: {page['status']}, the post's subject {found}")
        assert page["status"] == 200
        assert token in page["body"]
    finally:
        delete(files)


def test_the_web_nodes_answer_the_proxy_only():
    """uwsgi (8000) of each web node: open from the proxy, closed from the internet host."""
    web = group("mailman_web")
    probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/8000' && echo open || echo closed"
    for node in web:
        addr = HOSTVARS[node]["mailstack__address"]
        assert lab_host(PROXY).check_output(probe.format(addr)) == "open"
        assert internet().check_output(probe.format(addr)) == "closed"
