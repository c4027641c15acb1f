"""Personal data: reveals, exports and erasure leave a trace; erasure sticks."""

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from crm import roles
from crm.importing.engine import run_import
from crm.importing.specs import SPECS
from crm.models import AuditEvent, Consent, ConsentEvent, Member
from tests.crm.factories import MemberFactory, OrderFactory, OrderLineFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hq_client(client):
    user = UserFactory(is_staff=True, username="hq")
    user.groups.add(Group.objects.get(name=roles.HQ))
    client.force_login(user)
    return client


@pytest.fixture
def member(db):
    member = MemberFactory(external_id="M77", name="张丽", mobile="13812345678")
    OrderLineFactory(order=OrderFactory(member=member, order_no="SO-77"))
    Consent.objects.create(member=member, channel="sms", granted=True, source="import")
    ConsentEvent.objects.create(member=member, channel="sms", granted=True, source="import")
    return member


def test_revealing_a_mobile_needs_a_reason_and_is_logged(hq_client, member):
    url = reverse("admin:crm_member_reveal_mobile", args=[member.pk])
    response = hq_client.post(url, {"reason": ""})
    assert response.status_code == 200 and "13812345678" not in response.content.decode()
    response = hq_client.post(url, {"reason": "会员来电要求核对号码"})
    assert "13812345678" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="reveal_mobile")
    assert event.actor.username == "hq" and event.detail == {"reason": "会员来电要求核对号码"}
    # The log itself keeps only the masked number.
    assert "138****5678" in event.summary and "13812345678" not in event.summary


def test_list_exports_are_logged_with_rows_and_filters(hq_client, member):
    MemberFactory()
    page = hq_client.get(reverse("admin:crm_member_export"), {"q": "M77"})
    form = page.context["form"]
    data = {name: "on" for name, field in form.fields.items() if field.widget.input_type == "checkbox"}
    data["format"] = next(value for value, label in form.fields["format"].choices if label == "csv")
    if "resource" in form.fields:
        data["resource"] = form.fields["resource"].choices[0][0]
    response = hq_client.post(reverse("admin:crm_member_export") + "?q=M77", data)
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode("utf-8-sig")
    assert "138****5678" in body and "13812345678" not in body
    event = AuditEvent.objects.get(action="export")
    assert event.detail["rows"] == 1 and event.detail["filters"]["q"] == ["M77"]


def test_everything_held_about_a_member_downloads_as_json(hq_client, member):
    response = hq_client.post(reverse("admin:crm_member_personal_data", args=[member.pk]), {"reason": "会员申请 #12"})
    data = json.loads(response.content)
    assert data["profile"]["mobile"] == "13812345678" and data["profile"]["name"] == "张丽"
    assert data["orders"][0]["order_no"] == "SO-77" and len(data["orders"][0]["lines"]) == 1
    assert data["consents"]["history"][0]["granted"] is True
    assert data["request_reason"] == "会员申请 #12"
    assert AuditEvent.objects.get(action="pipl_export", object_id=str(member.pk)).detail["reason"] == "会员申请 #12"


def test_erasure_blanks_the_person_keeps_the_business_and_survives_reimport(hq_client, member, write_file):
    response = hq_client.post(reverse("admin:crm_member_erase", args=[member.pk]), {"reason": "会员注销申请 #13"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.name, member.mobile, member.birthday) == ("已注销会员", "", None)
    assert member.erased_at is not None and member.personalisation_opt_out
    assert member.orders.get().order_no == "SO-77"
    assert Consent.objects.get(member=member).granted is False
    assert list(ConsentEvent.objects.filter(member=member).order_by("id").values_list("granted", flat=True)) == [True, False]
    assert AuditEvent.objects.filter(action="erasure", object_id=str(member.pk)).exists()
    # The shop system still exports the old row: the import leaves the erased member alone.
    path = write_file("m.csv", "external_id,name,mobile,consent_sms\nM77,张丽,13812345678,1\n")
    outcome = run_import(SPECS["members"], path, mode="all")
    assert outcome.committed and outcome.updated == 0
    member.refresh_from_db()
    assert (member.name, member.mobile) == ("已注销会员", "")
    assert Consent.objects.get(member=member).granted is False


def test_operators_cannot_erase_or_export_personal_data(client, member):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=roles.BC_OPERATOR))
    client.force_login(user)
    assert client.post(reverse("admin:crm_member_erase", args=[member.pk]), {"reason": "x"}).status_code == 403
    assert client.post(reverse("admin:crm_member_personal_data", args=[member.pk]), {"reason": "x"}).status_code == 403
    assert Member.objects.get(pk=member.pk).name == "张丽"


def test_consent_changes_in_the_admin_are_audited(admin_client, member, member_form_data):
    url = reverse("admin:crm_member_change", args=[member.pk])
    data = member_form_data(member, Consent.objects.get(member=member))
    assert admin_client.post(url, data).status_code == 302
    assert AuditEvent.objects.get(action="consent_change").detail == {"channel": "sms", "granted": False}
