"""Fixtures for the member core, registered once in tests/conftest.py."""

from pathlib import Path

import pytest

from tests.crm.factories import MemberFactory


@pytest.fixture
def write_file(tmp_path):
    """write_file(name, text, encoding="utf-8") -> Path of a file with that text."""

    def write(name: str, text: str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


@pytest.fixture
def members_m1_m2(db):
    return [MemberFactory(external_id="M1"), MemberFactory(external_id="M2")]


@pytest.fixture
def member_form_data(admin_client):
    """member_form_data(member, consent, **changes): the member page's POST data,
    as the browser sends it, with the consent's "granted" box unticked."""
    from django.urls import reverse

    def build(member, consent, **changes):
        form = admin_client.get(reverse("admin:crm_member_change", args=[member.pk])).context["adminform"].form
        data = {key: value for key, value in form.initial.items() if value is not None and key in form.fields}
        data.pop("community", None)
        data.update(
            {
                "external_id": member.external_id,
                "gender": "F",
                "consents-TOTAL_FORMS": "1",
                "consents-INITIAL_FORMS": "1",
                "consents-0-id": consent.pk,
                "consents-0-member": member.pk,
                "consents-0-channel": consent.channel,
                "membertag_set-TOTAL_FORMS": "0",
                "membertag_set-INITIAL_FORMS": "0",
                **changes,
            }
        )
        return data

    return build
