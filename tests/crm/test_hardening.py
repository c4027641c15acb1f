"""The admin withstands the usual attacks."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_repeated_wrong_passwords_lock_the_login(client, django_user_model):
    django_user_model.objects.create_superuser("boss2", "", "a-long-passphrase-42")
    url = reverse("admin:login")
    for _ in range(5):
        client.post(url, {"username": "boss2", "password": "wrong"}, REMOTE_ADDR="10.0.0.7")
    response = client.post(url, {"username": "boss2", "password": "a-long-passphrase-42"}, REMOTE_ADDR="10.0.0.7")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_right_password_logs_in(client, django_user_model):
    django_user_model.objects.create_superuser("boss3", "", "a-long-passphrase-42")
    response = client.post(reverse("admin:login"), {"username": "boss3", "password": "a-long-passphrase-42"}, REMOTE_ADDR="10.0.0.8")
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_pages_carry_a_content_security_policy_and_no_framing(admin_client):
    response = admin_client.get(reverse("admin:crm_member_changelist"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert response["X-Frame-Options"] == "DENY"
    assert "onchange=" not in response.content.decode()


def test_weak_passwords_are_refused(django_user_model):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("12345678")
    with pytest.raises(ValidationError):
        validate_password("password1")
