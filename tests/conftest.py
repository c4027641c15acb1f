import pytest

pytest_plugins = ["tests.crm.fixtures"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-passphrase-42")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
