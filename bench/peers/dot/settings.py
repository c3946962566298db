"""Settings of the smallest Django project that runs django-oauth-toolkit.

The database is an SQLite file (PEER_DB) with netcalc's pragmas, so that
neither server pays more per write than the other. Production mode: DEBUG
off, no admin, no sessions, one middleware.
"""

import os

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
SECRET_KEY = os.environ["PEER_DJANGO_KEY"]
ROOT_URLCONF = "urls"
WSGI_APPLICATION = "wsgi.application"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "oauth2_provider",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["PEER_DB"],
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 5,
        },
    }
}
OAUTH2_PROVIDER = {"ACCESS_TOKEN_EXPIRE_SECONDS": 3600, "SCOPES": {"api": "API"}}
