"""roles/nginx in front of two uwsgi nodes running a small WSGI app (prepare.yml): what a user and a
back-end see through the proxy. Tests run in file order: the last ones stop a node, flood the login
page and try a bad certificate."""

import json
import pathlib
import subprocess
import tempfile

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import flat, host

SITE = "lists.nginx.test"
PROXY = "172.31.33.10"
CONVERGE = pathlib.Path(__file__).resolve().parents[1] / "converge.yml"
testinfra_hosts = ["docker://nginx-client"]



CLIENT, BACKEND = host("nginx-client"), host("nginx-backend")


def curl(url, *extra, source=CLIENT):
    """'code body' of one request (-k: the certificate is self-signed here)."""
    return source.check_output("curl -sk -w ' %%{http_code}' " + " ".join(extra) + " %s", url)


def status(url, *extra, source=CLIENT):
    return source.check_output("curl -sk -o /dev/null -w '%%{http_code}' " + " ".join(extra) + " %s", url)


def test_https_reaches_both_nodes_with_hsts():
    seen = set()
    for _ in range(8):
        out = curl(f"https://{SITE}/postorius/lists/")
        assert out.endswith(" 200"), out
        assert "path=/postorius/lists/" in out
        seen.add(out.split()[0])
    assert seen == {"node=nginx-node1", "node=nginx-node2"}, seen
    headers = CLIENT.check_output("curl -sk -D - -o /dev/null %s", f"https://{SITE}/")
    assert "strict-transport-security: max-age=63072000" in headers.lower()


def test_static_files_come_from_the_proxys_copy():
    out = curl(f"https://{SITE}/mailman3/static/CACHE/css/site.css")
    assert out == "body { color: #123456; }\n 200", out
    assert host("nginx-proxy").file("/var/www/mailman3-static/CACHE/css/site.css").exists


def test_plain_http_redirects_and_internal_paths_are_for_the_back_ends_only():
    out = CLIENT.check_output(
        "curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' %s", f"http://{SITE}/x"
    )
    assert out == f"301 https://{SITE}/x"
    api = f"http://{PROXY}/hyperkitty/api/mailman/urls"
    assert status(api) == "403"
    # The back-end gets through, and the node sees the back-end's own address (not the proxy's).
    assert curl(api, source=BACKEND).split()[-2:] == ["remote=172.31.33.30", "200"]


def test_testssl_finds_only_tls12_and_13_intermediate_ciphers_and_hsts():
    CLIENT.run("rm -f /tmp/testssl.json")
    CLIENT.run(
        "testssl --nodns none --quiet --color 0 --warnings off -p -s -h --jsonfile /tmp/testssl.json %s",
        f"https://{SITE}",
    )
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


def test_with_one_node_stopped_every_request_is_answered_by_the_other():
    node1 = host("nginx-node1")
    node1.check_output("systemctl stop molecule-uwsgi")
    try:
        answers = [curl(f"https://{SITE}/postorius/lists/") for _ in range(8)]
        assert all(a.startswith("node=nginx-node2 ") and a.endswith(" 200") for a in answers), answers
    finally:
        node1.check_output("systemctl start molecule-uwsgi")


def test_login_attempts_beyond_the_limit_get_429():
    codes = [status(f"https://{SITE}/accounts/login/") for _ in range(15)]
    assert codes[0] == "200", codes
    # 10 a minute with a burst of 5: the sixth or seventh request already waits its turn.
    assert codes[:6] == ["200"] * 6, codes
    assert codes[-1] == "429", codes
    # Other pages are not limited.
    assert status(f"https://{SITE}/postorius/lists/") == "200"


def test_posts_that_send_mail_beyond_the_limit_get_429():
    reset, subscribe = "/accounts/password/reset/", "/postorius/lists/a.lists.nginx.test/anonymous_subscribe"
    # Reading the forms is not limited; posting them (the site mails the typed address) is: 5 a minute
    # with a burst of 3 per client address, over every such page.
    assert [status(f"https://{SITE}{path}") for path in [reset, subscribe] * 4] == ["200"] * 8
    post = "-X POST -d address=x@remote.test"
    codes = [status(f"https://{SITE}{reset}", post) for _ in range(4)]
    codes += [status(f"https://{SITE}{subscribe}", post) for _ in range(2)]
    assert codes == ["200"] * 4 + ["429"] * 2, codes
    # The login pages keep their own limit (another zone); other pages none.
    assert status(f"https://{SITE}/postorius/lists/", post) == "200"


def served_certificate():
    return host("nginx-proxy").check_output(
        "echo | openssl s_client -connect 127.0.0.1:443 -servername %s 2>/dev/null "
        "| openssl x509 -noout -fingerprint",
        SITE,
    )


@pytest.fixture
def mismatched_pair():
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={SITE}",
                "-keyout",
                d / "one.key",
                "-out",
                d / "one.crt",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-out", d / "other.key"],
            check=True,
            capture_output=True,
        )
        yield d / "one.crt", d / "other.key"


def test_a_key_that_is_not_the_certificates_fails_before_nginx_is_touched(mismatched_pair):
    certificate, key = mismatched_pair
    proxy = host("nginx-proxy")
    before = (
        served_certificate(),
        proxy.file("/etc/nginx/tls/site.crt").sha256sum,
        proxy.file("/etc/nginx/nginx.conf").sha256sum,
    )
    proc = ansible_playbook(
        CONVERGE, "-e", f"nginx__tls_certificate_src={certificate}", "-e", f"nginx__tls_key_src={key}"
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    message = (
        f"nginx: the key {key} does not belong to the certificate {certificate} "
        "(their public keys differ); nginx was not changed"
    )
    output = proc.stdout + proc.stderr
    assert message in flat(output), output[-3000:]
    assert "Install nginx" not in output
    after = (
        served_certificate(),
        proxy.file("/etc/nginx/tls/site.crt").sha256sum,
        proxy.file("/etc/nginx/nginx.conf").sha256sum,
    )
    assert after == before
    assert proxy.service("nginx").is_running
