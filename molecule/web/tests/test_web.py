"""molecule/web, the web side: Postorius and HyperKitty on two nodes behind the nginx proxy, in a browser.

The client browses in headless Chromium (screenshots under .cache/screenshots/web/ of the repository),
posts to a list over SMTP (it stands in for an MX node), signs a new user up (the confirmation mail
leaves through the web node's Postfix and the relay, which stores it), probes the proxy with
testssl.sh, and checks what it must not reach. Tests run in file order; the last ones stop a node,
flood the login page and try a bad certificate.
"""

import json
import pathlib
import re
import secrets
import subprocess
import tempfile
import time
import uuid

import pytest
from web_scenario import PROJECT, PROXY, SITE, WEB1, WEB2, ansible_playbook, body, host, smtp, stored

SHOTS = PROJECT / ".cache" / "screenshots" / "web"
LISTS = f"https://{SITE}/postorius/lists/"
ARCHIVE = f"https://{SITE}/hyperkitty/list/dev@{SITE}/"
# The fragment HyperKitty's list page loads, filled from the cache the task cluster rebuilds.
RECENT = f"{ARCHIVE}recent-threads"
# What Django, uwsgi and nginx answer instead of a page.
ERROR_MARKERS = ("Server Error (500)", "Bad Request (400)", "502 Bad Gateway", "504 Gateway", "Not Found",
                 "Something went wrong", "Service Unavailable", "This site can", "ERR_")


CLIENT = host("web-client")


def browse(url, name, budget=None):
    """Load url in headless Chromium on the client, save a screenshot, return the DOM; fail on errors."""
    flags = ("--headless --no-sandbox --disable-gpu --ignore-certificate-errors --hide-scrollbars "
             "--window-size=1280,1024")
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
    # bulk@ is not advertised (its list setting): Postorius does not show it to visitors.
    assert f"bulk@{SITE}" not in dom
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
    digest = ("cd {} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum")
    web1 = host("web-web1").check_output(digest.format("/var/lib/mailman3/web/static"))
    web2 = host("web-web2").check_output(digest.format("/var/lib/mailman3/web/static"))
    proxy = host("web-proxy").check_output(digest.format("/var/www/mailman3-static"))
    assert web1 == web2 == proxy
    # A compressed stylesheet HyperKitty's pages link to is served from the proxy's copy.
    dom = CLIENT.check_output("curl -sk %s", ARCHIVE)
    css = re.search(r'href="(/mailman3/static/CACHE/css/[^"]+\.css)"', dom)
    assert css, dom[:2000]
    assert curl_status(f"https://{SITE}{css.group(1)}") == "200"


def test_the_task_cluster_and_the_jobs_run_on_one_node_only():
    web1, web2 = host("web-web1"), host("web-web2")
    # [m]: the pattern must not match the shell that runs pgrep.
    assert web1.run("pgrep -f '[m]anage.py qcluster'").rc == 0
    assert web2.run("pgrep -f '[m]anage.py qcluster'").rc == 1
    assert "runjobs minutely" in web1.file("/etc/cron.d/mailman3-web").content_string
    assert "runjobs minutely" not in web2.file("/etc/cron.d/mailman3-web").content_string


def test_the_web_nodes_ports_are_closed_to_the_client():
    probe = ("import socket, sys; s = socket.socket(); s.settimeout(3); "
             "print(s.connect_ex((sys.argv[1], int(sys.argv[2]))))")
    for address in (WEB1, WEB2):
        for port in (8000, 11211):
            result = CLIENT.check_output("python3 -c %s %s %s", probe, address, str(port))
            assert result != "0", (address, port)
    # ...and open to the proxy (uwsgi) and to the other node (memcached).
    assert host("web-proxy").check_output("python3 -c %s %s 8000", probe, WEB2) == "0"
    assert host("web-web2").check_output("python3 -c %s %s 11211", probe, WEB1) == "0"


def test_plain_http_redirects_and_the_archiver_api_is_for_the_back_end_only():
    out = CLIENT.check_output("curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' %s", f"http://{SITE}/postorius/lists/")
    assert out == f"301 https://{SITE}/postorius/lists/"
    assert curl_status(f"http://{PROXY}/hyperkitty/api/mailman/urls") == "403"


def form_token(jar, url):
    """GET url on the client, keeping cookies in jar; the CSRF token of the page's form."""
    page = CLIENT.check_output("curl -sk -c %s -b %s %s", jar, jar, url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, f"{url}: no form in\n{page[:2000]}"
    return token.group(1)


def submit(jar, url, fields):
    """Fill in and send the form of url as a browser would (cookie, CSRF token, referer); 'code redirect'."""
    fields = {"csrfmiddlewaretoken": form_token(jar, url), **fields}
    return CLIENT.check_output(
        "curl -sk -o /dev/null -w '%%{http_code} %%{redirect_url}' -c %s -b %s -e %s"
        + " --data-urlencode %s" * len(fields) + " %s",
        jar, jar, url, *(f"{k}={v}" for k, v in fields.items()), url)


def test_a_new_user_signs_up_and_confirms_through_the_mail_the_relay_delivered():
    name = f"newuser{uuid.uuid4().hex[:8]}"
    address, password = f"{name}@example.test", secrets.token_urlsafe(16)
    jar = f"/tmp/{name}.cookies"
    signed_up = submit(jar, f"https://{SITE}/accounts/signup/",
                       {"email": address, "username": name, "password1": password, "password2": password})
    assert signed_up == f"302 https://{SITE}/accounts/confirm-email/", signed_up

    # The confirmation left through the web node's loopback Postfix and the relay (which stored it).
    mail = stored(f"To: {address}", 1)
    assert set(mail) == {address}, mail
    text = mail[address]
    assert re.search(r"^Received: from \S+ \(\S+ \[172\.31\.18\.2[12]\]\)\s+by web-nexthop", text, re.M), text
    subject = re.search(r"^Subject: (.*)$", text, re.M).group(1)
    assert f"[{SITE}]" in subject, subject
    link = re.search(rf"https://{re.escape(SITE)}/accounts/confirm-email/[^/\s]+/", body(text))
    assert link, body(text)

    # Before the confirmation, a login is sent back to the confirmation notice.
    before = submit(jar, f"https://{SITE}/accounts/login/", {"login": name, "password": password})
    assert before == f"302 https://{SITE}/accounts/confirm-email/", before
    dom = browse(link.group(0), "confirm-email")
    assert address in dom
    confirmed = submit(jar, link.group(0), {})
    assert confirmed.startswith("302 "), confirmed
    # Confirmed: the login goes through to the site.
    login = {"login": name, "password": password}
    after = submit(f"/tmp/{name}.2.cookies", f"https://{SITE}/accounts/login/", login)
    assert after.startswith("302 ") and "/accounts/" not in after, after


def test_testssl_finds_only_tls12_and_13_intermediate_ciphers_and_hsts():
    CLIENT.run("rm -f /tmp/testssl.json")
    CLIENT.run("testssl --nodns none --quiet --color 0 --warnings off -p -s -h "
               "--jsonfile /tmp/testssl.json %s", f"https://{SITE}")
    findings = {f["id"]: f["finding"] for f in json.loads(CLIENT.file("/tmp/testssl.json").content_string)}
    for protocol in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[protocol].startswith("not offered"), (protocol, findings[protocol])
    assert findings["TLS1_2"].startswith("offered"), findings["TLS1_2"]
    assert findings["TLS1_3"].startswith("offered"), findings["TLS1_3"]
    # testssl 3.0.8's standard cipher lists: nothing below AEAD (CBC is "AVERAGE").
    for weak in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
        finding = findings[f"cipherlist_{weak}"]
        assert finding.startswith("not offered"), (weak, finding)
    assert findings["cipherlist_STRONG"].startswith("offered"), findings["cipherlist_STRONG"]
    assert findings["HSTS_time"].startswith("730 days"), findings.get("HSTS_time")


def test_with_one_node_stopped_both_pages_still_load():
    web1 = host("web-web1")
    web1.check_output("systemctl stop mailman3-web memcached")
    try:
        for attempt in range(2):
            browse(LISTS, f"postorius-lists-web1-down-{attempt}")
            browse(ARCHIVE, f"hyperkitty-list-web1-down-{attempt}", budget=10000)
    finally:
        web1.check_output("systemctl start memcached mailman3-web")


def test_login_attempts_beyond_the_limit_get_429():
    codes = [curl_status(f"https://{SITE}/accounts/login/") for _ in range(15)]
    assert codes[0] == "200", codes
    assert "429" in codes, codes


def run_playbook(*extra):
    return ansible_playbook(PROJECT / "playbooks" / "web.yml", "--limit", "web-proxy", *extra)


def served_certificate():
    return host("web-proxy").check_output(
        "echo | openssl s_client -connect 127.0.0.1:443 -servername %s 2>/dev/null "
        "| openssl x509 -noout -fingerprint", SITE)


@pytest.fixture
def mismatched_pair():
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={SITE}", "-keyout", d / "one.key", "-out", d / "one.crt"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", d / "other.key"], check=True,
                       capture_output=True)
        yield d / "one.crt", d / "other.key"


def test_a_key_that_is_not_the_certificates_fails_before_nginx_is_touched(mismatched_pair):
    certificate, key = mismatched_pair
    proxy = host("web-proxy")
    before = (served_certificate(), proxy.file("/etc/nginx/tls/site.crt").sha256sum,
              proxy.file("/etc/nginx/nginx.conf").sha256sum)
    proc = run_playbook("-e", f"nginx__tls_certificate_src={certificate}", "-e", f"nginx__tls_key_src={key}")
    assert proc.returncode != 0, proc.stdout[-3000:]
    message = (f"nginx: the key {key} does not belong to the certificate {certificate} "
               "(their public keys differ); nginx was not changed")
    output = proc.stdout + proc.stderr
    assert message in " ".join(output.split()), output[-3000:]
    assert "Install nginx" not in output
    after = (served_certificate(), proxy.file("/etc/nginx/tls/site.crt").sha256sum,
             proxy.file("/etc/nginx/nginx.conf").sha256sum)
    assert after == before
    assert proxy.service("nginx").is_running
