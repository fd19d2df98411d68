"""The lab's DNS answers for the lab only; the internet host stores what it is sent by MX."""

import time
import uuid

import pytest

testinfra_hosts = ["ansible://labsvc-client"]


def test_mx_records_of_remote_and_list_domains(host):
    mx = host.check_output("dig +short MX remote-a.test").splitlines()
    assert mx == ["10 labsvc-internet.labsvc.test."]
    assert host.check_output("dig +short MX lists.labsvc.test") == "10 labsvc-client.labsvc.test."
    assert host.check_output("dig +short A labsvc-internet.labsvc.test") == "172.31.2.100"


def test_reverse_records_come_from_the_lab_dns(host):
    assert host.check_output("dig +short -x 172.31.2.10") == "labsvc-client.labsvc.test."


@pytest.mark.parametrize("name", ["debian.org", "example.com", "nonexistent.labsvc.test"])
def test_nothing_else_resolves(host, name):
    out = host.run(f"dig +tries=1 +time=2 A {name}")
    assert out.rc == 0
    assert "status: NOERROR" not in out.stdout or "ANSWER: 0" in out.stdout


def test_mail_to_a_remote_domain_is_stored_by_the_internet_host(host):
    internet = host.get_host("ansible://labsvc-internet", ansible_inventory=host.backend.ansible_inventory)
    token = uuid.uuid4().hex
    message = f"Subject: probe {token}\\n\\nhello\\n"
    host.run_test(f"printf '{message}' | /usr/sbin/sendmail -f probe@labsvc.test bob@remote-b.test")
    found = ""
    for _ in range(30):
        found = internet.run(f"grep -l 'probe {token}' -r /var/mail/internet/remote-b.test/new").stdout
        if found:
            break
        time.sleep(1)
    assert found, "the message did not arrive at the internet host"
    stored = internet.check_output(f"cat {found.split()[0]}")
    assert "Delivered-To: bob@remote-b.test" in stored
    # It came by MX lookup from the client, not by a local shortcut.
    assert "from labsvc-client.labsvc.test" in stored


def test_internet_host_checks_refuse_bad_files(host):
    """The validate: programs of lab_internet (roles/lab_internet/files/): the live files pass, a
    pcre map with a broken pattern and a main.cf with an unknown parameter are refused."""
    internet = host.get_host("ansible://labsvc-internet", ansible_inventory=host.backend.ansible_inventory)
    checks = "/usr/local/libexec/mailstack/lab-internet-check"
    assert internet.run(f"{checks}-pcre-map /etc/postfix/virtual_mailbox.pcre").rc == 0
    assert internet.run(f"{checks}-main-cf /etc/postfix/main.cf").rc == 0
    try:
        internet.run_test("printf '/^(unclosed@/ OK\\n' > /tmp/bad.pcre")
        bad_map = internet.run(f"{checks}-pcre-map /tmp/bad.pcre")
        assert bad_map.rc == 1, bad_map.stdout + bad_map.stderr
        internet.run_test("cp /etc/postfix/main.cf /tmp/bad.cf")
        internet.run_test("echo 'no_such_parameter = 1' >> /tmp/bad.cf")
        bad_cf = internet.run(f"{checks}-main-cf /tmp/bad.cf")
        assert bad_cf.rc == 1, bad_cf.stdout + bad_cf.stderr
        assert "no_such_parameter" in bad_cf.stderr
    finally:
        internet.run("rm -f /tmp/bad.pcre /tmp/bad.cf")
