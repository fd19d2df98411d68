"""The web side of a running lab (`make lab-test`), seen from the lab's internet host: the proxy's
public name resolves in the lab DNS, Postorius lists the lab's lists over HTTPS, a post sent over
SMTP is archived and shown by HyperKitty, plain HTTP redirects to HTTPS, and a new user signs up
with the confirmation mail that reached the internet host through the relays. Chromium is in the
mailman_web role's scenario; testssl, a stopped web node and the login limit in roles/nginx's.
"""

import email
import email.policy
import json
import re
import secrets
import shlex
import time
import uuid

from e2e import delete, internet, post, wait_copies
from test_lab import HOSTVARS, group, lab_host

SITE = "lists.lab.mailstack.test"
PROXY = group("proxy")[0]

# A browser's request from the internet host, redirects not followed (the lab's self-signed
# certificate accepted). With a form (JSON): load the page, fill in the form with its CSRF token
# and send it as a browser would (cookie, referer); prints [status, Location]. Without: a GET;
# prints {"status", "body", "location"}.
BROWSE = r"""
import http.cookiejar, json, re, ssl, sys, urllib.error, urllib.parse, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx),
                                     urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
url = sys.argv[1]
request = url
if len(sys.argv) > 2:
    fields = json.loads(sys.argv[2])
    page = opener.open(url, timeout=60).read().decode()
    fields["csrfmiddlewaretoken"] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, headers={"Referer": url})
try:
    r = opener.open(request, timeout=60)
    status, body, location = r.status, r.read().decode(errors="replace"), None
except urllib.error.HTTPError as e:
    status, body, location = e.code, e.read().decode(errors="replace"), e.headers.get("Location")
print(json.dumps([status, location] if len(sys.argv) > 2 else
                 {"status": status, "body": body, "location": location}))
"""


def submit(url: str, fields: dict) -> list:
    out = internet().check_output(
        f"python3 -c {shlex.quote(BROWSE)} {shlex.quote(url)} {shlex.quote(json.dumps(fields))}"
    )
    return json.loads(out)


def fetch(url: str) -> dict:
    out = internet().check_output(f"python3 -c {shlex.quote(BROWSE)} {shlex.quote(url)}")
    return json.loads(out)


def test_the_public_name_resolves_to_the_proxy(figure):
    got = internet().check_output(f"getent hosts {SITE}").split()[0]
    figure(f"{SITE}: {got} ({PROXY})")
    assert got == HOSTVARS[PROXY]["mailstack__address"]


def test_plain_http_redirects_to_https(figure):
    page = fetch(f"http://{SITE}/postorius/lists/")
    figure(f"http://{SITE}/postorius/lists/: {page['status']} to {page['location']}")
    assert page["status"] == 301
    assert page["location"] == f"https://{SITE}/postorius/lists/"


def test_postorius_lists_the_lab_lists(figure):
    page = fetch(f"https://{SITE}/postorius/lists/")
    figure(f"https://{SITE}/postorius/lists/: {page['status']}, {len(page['body'])} bytes")
    assert page["status"] == 200
    for name in ("announce@lists.mailstack.test", "bulk@lists.mailstack.test"):
        assert name in page["body"]


def test_a_post_is_archived_and_shown_by_hyperkitty(figure):
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
        figure(f"{url}: {page['status']}, the post's subject {found}")
        assert page["status"] == 200
        assert token in page["body"]
    finally:
        delete(files)


def test_the_web_nodes_answer_the_proxy_only(figure):
    """uwsgi (8000) of each web node: open from the proxy, closed from the internet host."""
    web = group("mailman_web")
    probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/8000' && echo open || echo closed"
    got = {}
    for node in web:
        addr = HOSTVARS[node]["mailstack__address"]
        got[node] = (
            lab_host(PROXY).check_output(probe.format(addr)),
            internet().check_output(probe.format(addr)),
        )
    seen = ", ".join(f"{node} {a}/{b}" for node, (a, b) in got.items())
    figure(f"uwsgi port 8000 from the proxy / the internet host: {seen}")
    assert all(pair == ("open", "closed") for pair in got.values()), got


def test_a_new_user_signs_up_with_the_confirmation_mail_that_reached_the_internet_host(figure):
    """Sign-up mail leaves through the web node's loopback Postfix and the relays."""
    name = f"newuser{uuid.uuid4().hex[:8]}"
    address, password = f"{name}@remote-c.test", secrets.token_urlsafe(16)
    login = {"login": name, "password": password}
    signed_up = submit(f"https://{SITE}/accounts/signup/",
                       {"email": address, "username": name, "password1": password, "password2": password})
    assert signed_up == [302, "/accounts/confirm-email/"], signed_up
    files = wait_copies(f"To: {address}", 1, timeout=180)
    try:
        assert len(files) == 1, files
        text = internet().check_output(f"cat {shlex.quote(files[0])}")
        message = email.message_from_string(text, policy=email.policy.default)
        assert f"[{SITE}]" in message["Subject"], message["Subject"]
        relays = {HOSTVARS[r]["mailstack__address"] for r in group("relays")}
        hops = re.findall(r"^Received: from \S+ \(\S+ \[([0-9.]+)\]\)", text, re.M)
        assert hops and hops[0] in relays, hops
        link = re.search(rf"https://{re.escape(SITE)}/accounts/confirm-email/[^/\s]+/",
                         message.get_body(("plain",)).get_content())
        assert link, text
        assert submit(f"https://{SITE}/accounts/login/", login) == [302, "/accounts/confirm-email/"]
        confirmed = submit(link.group(0), {})
        assert confirmed[0] == 302, confirmed
        after = submit(f"https://{SITE}/accounts/login/", login)
        figure(
            f"{address}: signed up, confirmation mail through relay {hops[0]}, confirmed, login -> {after}"
        )
        assert after[0] == 302 and "/accounts/" not in after[1], after
    finally:
        delete(files)
