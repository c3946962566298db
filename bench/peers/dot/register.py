"""Migrate the database and register the one confidential client.

The client uses the client credentials grant. PEER_HASH_SECRET=1 keeps the
toolkit's default of storing the secret hashed with Django's password
hasher; 0 stores it as given.
"""

import os

import django
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
django.setup()

from oauth2_provider.models import Application  # noqa: E402  after setup()

call_command("migrate", verbosity=0)
Application.objects.create(
    name="bench",
    client_id=os.environ["PEER_CLIENT_ID"],
    client_secret=os.environ["PEER_CLIENT_SECRET"],
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    hash_client_secret=os.environ["PEER_HASH_SECRET"] == "1",
)
