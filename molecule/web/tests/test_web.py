"""molecule/web: the back-end and the web side together, in a browser.

The client browses Postorius and HyperKitty through the proxy in headless Chromium (screenshots under
.cache/screenshots/web/ of the repository) and posts to a list over SMTP (it stands in for an MX node):
the post is archived through the proxy and shown by HyperKitty. Each role alone (TLS, failover, rate
limits, the task node, Mailman's runners) has its own scenario; the site, the end-to-end suite.
"""

import re
import time
import uuid

from web_scenario import PROJECT, SITE, host, smtp

SHOTS = PROJECT / ".cache" / "screenshots" / "web"
LISTS = f"https://{SITE}/postorius/lists/"
ARCHIVE = f"https://{SITE}/hyperkitty/list/dev@{SITE}/"
# The fragment HyperKitty's list page loads, filled from the cache the task cluster rebuilds.
RECENT = f"{ARCHIVE}recent-threads"
# What Django, uwsgi and nginx answer instead of a page.
ERROR_MARKERS = (
    "Server Error (500)",
    "Bad Request (400)",
    "502 Bad Gateway",
    "504 Gateway",
    "Not Found",
    "Something went wrong",
    "Service Unavailable",
    "This site can",
    "ERR_",
)


CLIENT = host("web-client")


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


def curl_status(url, *extra):
    return CLIENT.check_output("curl -sk -o /dev/null -w '%%{http_code}' " + " ".join(extra) + " %s", url)


def post(subject):
    """A post from a member, handed to the back-end's port 25 as an MX node would."""
    replies = smtp("web-client", "alice@example.test", [f"dev@{SITE}"], subject)
    assert replies.get("data") == 250, replies


def test_the_lists_page_lists_the_lists():
    dom = browse(LISTS, "postorius-lists")
    assert f"dev@{SITE}" in dom
    assert f"announce@{SITE}" in dom
    # The site's name is the data's (the package's default is example.com).
    assert "example.com" not in dom


def test_a_post_is_archived_and_shown_by_hyperkitty():
    subject = f"archived-{uuid.uuid4().hex[:10]}"
    post(subject)
    deadline = time.time() + 180
    while time.time() < deadline:
        page = CLIENT.run("curl -sk %s", RECENT).stdout
        if subject in page:
            break
        time.sleep(5)
    dom = browse(ARCHIVE, "hyperkitty-list", budget=10000)
    assert subject in dom, f"{subject} not on {ARCHIVE}"


def test_every_node_has_the_same_static_files_and_so_has_the_proxy():
    digest = "cd {} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"
    web1 = host("web-web1").check_output(digest.format("/var/lib/mailman3/web/static"))
    web2 = host("web-web2").check_output(digest.format("/var/lib/mailman3/web/static"))
    proxy = host("web-proxy").check_output(digest.format("/var/www/mailman3-static"))
    assert web1 == web2 == proxy
    # A compressed stylesheet HyperKitty's pages link to is served from the proxy's copy.
    dom = CLIENT.check_output("curl -sk %s", ARCHIVE)
    css = re.search(r'href="(/mailman3/static/CACHE/css/[^"]+\.css)"', dom)
    assert css, dom[:2000]
    assert curl_status(f"https://{SITE}{css.group(1)}") == "200"
