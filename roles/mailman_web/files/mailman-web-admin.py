#!/usr/bin/python3
"""Create or update mailman3-web's superuser; print 'changed' or 'unchanged'.

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
from django.contrib.auth.models import User  # noqa: E402

name = os.environ["MAILMAN_WEB_ADMIN_USER"]
email = os.environ["MAILMAN_WEB_ADMIN_EMAIL"]
password = os.environ["MAILMAN_WEB_ADMIN_PASSWORD"]

changed = False
user, created = User.objects.get_or_create(username=name, defaults={"email": email})
changed |= created
if not (user.is_superuser and user.is_staff and user.is_active and user.email == email):
    user.is_superuser = user.is_staff = user.is_active = True
    user.email = email
    changed = True
if not user.check_password(password):
    user.set_password(password)
    changed = True
if changed:
    user.save()
address, created = EmailAddress.objects.get_or_create(user=user, email=email)
if created or not (address.verified and address.primary):
    EmailAddress.objects.filter(user=user).exclude(pk=address.pk).update(primary=False)
    address.verified = address.primary = True
    address.save()
    changed = True
print("changed" if changed else "unchanged")
