"""Settings for the test run: production settings with test-only defaults."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
# Apart from a running demo: its own database, broker folders and uploads.
os.environ.setdefault("CRM_DATA_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "test"))

from crm.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
