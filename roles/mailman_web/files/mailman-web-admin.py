#!/usr/bin/python3
"""Make mailman3-web's site and superuser match the data; print what changed ('site', 'user') or 'unchanged'.

The site (Django's sites framework, settings.SITE_ID) gets its domain and display name from
MAILMAN_WEB_SITE_DOMAIN and MAILMAN_WEB_SITE_NAME (the package leaves example.com, which
HyperKitty shows and allauth puts in the subject of its mail).

Run as www-data with the user name, address and password in the environment
(MAILMAN_WEB_ADMIN_USER, MAILMAN_WEB_ADMIN_EMAIL, MAILMAN_WEB_ADMIN_PASSWORD), so that the
password never appears in a process list. The address is marked verified and primary, as
allauth requires before a login.
"""

import os
import sys

sys.path.insert(0, "/usr/share/mailman3-web")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django

django.setup()

from allauth.account.models import EmailAddress  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sites.models import Site  # noqa: E402

name = os.environ["MAILMAN_WEB_ADMIN_USER"]
email = os.environ["MAILMAN_WEB_ADMIN_EMAIL"]
password = os.environ["MAILMAN_WEB_ADMIN_PASSWORD"]

changed = []
site_domain = os.environ["MAILMAN_WEB_SITE_DOMAIN"]
site_name = os.environ["MAILMAN_WEB_SITE_NAME"]
site, created = Site.objects.get_or_create(
    pk=settings.SITE_ID, defaults={"domain": site_domain, "name": site_name}
)
if created or (site.domain, site.name) != (site_domain, site_name):
    site.domain, site.name = site_domain, site_name
    site.save()
    changed.append("site")

user_changed = False
user, created = User.objects.get_or_create(username=name, defaults={"email": email})
user_changed |= created
if not (user.is_superuser and user.is_staff and user.is_active and user.email == email):
    user.is_superuser = user.is_staff = user.is_active = True
    user.email = email
    user_changed = True
if not user.check_password(password):
    user.set_password(password)
    user_changed = True
if user_changed:
    user.save()
address, created = EmailAddress.objects.get_or_create(user=user, email=email)
if created or not (address.verified and address.primary):
    EmailAddress.objects.filter(user=user).exclude(pk=address.pk).update(primary=False)
    address.verified = address.primary = True
    address.save()
    user_changed = True
if user_changed:
    changed.append("user")
print(" ".join(changed) or "unchanged")
