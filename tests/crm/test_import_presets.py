"""A shop's own export, not renamed in Excel first: the check page maps its
columns (suggested from the headings), previews them, saves a preset; the
upload page and import_* --preset use one; Shopify's export has its own."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from crm.importing.models import ImportJob, ImportPreset, ImportStatus
from crm.models import Member, Order, OrderLine
from tests.crm.factories import MemberFactory
from tests.crm.test_shopify import export  # noqa: F401 - the Shopify export fixture

pytestmark = pytest.mark.django_db

YOUZAN = "Order ID,Customer ID,Order Date,Total,Buyer note\nYZ1,M1,2025-11-01 10:00,88.50,尽快发货\nYZ2,M2,2025-11-02 11:30,19.90,\n"


def upload(client, text, *, kind="orders", preset="", name="export.csv"):
    data = {"kind": kind, "file": SimpleUploadedFile(name, text.encode()), "preset": preset}
    response = client.post(reverse("admin:crm_importjob_add"), data)
    return response, ImportJob.objects.order_by("-id").first()


@pytest.fixture
def members():
    MemberFactory(external_id="M1")
    MemberFactory(external_id="M2")


def test_the_check_page_maps_a_shops_headings_previews_and_saves_a_preset(admin_client, members, tmp_path):
    response, job = upload(admin_client, YOUZAN)
    assert response.status_code == 302 and job.status == ImportStatus.VALIDATED and job.valid_rows == 0
    detail = admin_client.get(response["Location"]).content.decode()
    columns_url = reverse("admin:crm_importjob_columns", args=[job.pk])
    assert columns_url in detail and 'data-testid="map-columns"' in detail

    page = admin_client.get(columns_url)
    suggested = {name[4:]: value for name, value in page.context["form"].initial.items() if name.startswith("map_") and value}
    assert suggested == {"order_no": "Order ID", "member_external_id": "Customer ID", "ordered_at": "Order Date", "amount": "Total"}
    html = page.content.decode()
    assert "88.50 · 19.90" in html  # the first values beside each choice
    assert "Buyer note" in html[html.index('data-testid="unused-columns"'):] and "尽快发货" in html  # and the columns left unread

    form = {f"map_{field}": heading for field, heading in suggested.items()}
    preview = admin_client.post(columns_url, {**form, "preview": "1"})
    assert preview.context["preview_fields"] == ["order_no", "member_external_id", "ordered_at", "amount"]
    assert preview.context["preview_rows"][0] == ["YZ1", "M1", "2025-11-01 10:00", "88.50"]
    assert not Order.objects.exists()

    saved = admin_client.post(columns_url, {**form, "preset_name": "有赞订单", "save": "1"})
    assert saved.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.valid_rows, job.error_rows, job.preset) == (ImportStatus.VALIDATED, 2, 0, "有赞订单")
    assert ImportPreset.objects.get(name="有赞订单").mapping == suggested
    admin_client.post(reverse("admin:crm_importjob_detail", args=[job.pk]), {"action": "all"})
    assert Order.objects.get(order_no="YZ1").amount == Decimal("88.50")

    again = tmp_path / "youzan_december.csv"
    again.write_text("Order ID,Customer ID,Order Date,Total\nYZ3,M2,2025-12-01 09:00,30\n", encoding="utf-8")
    call_command("import_orders", str(again), "--preset", "有赞订单", stdout=StringIO())
    assert Order.objects.get(order_no="YZ3").member.external_id == "M2"
    _, picked = upload(admin_client, YOUZAN.replace("YZ1", "YZ9"), preset="有赞订单")  # picked on the upload page
    assert (picked.valid_rows, picked.error_rows) == (2, 0)


def test_a_required_field_left_unmapped_is_named_and_nothing_changes(admin_client, members):
    _, job = upload(admin_client, YOUZAN)
    columns_url = reverse("admin:crm_importjob_columns", args=[job.pk])
    page = admin_client.post(columns_url, {"map_order_no": "Order ID", "map_member_external_id": "Total", "map_ordered_at": "Order Date",
                                           "map_amount": "Total", "preset_name": "半成品", "save": "1"})
    assert page.status_code == 200
    errors = page.context["form"].errors
    assert "map_amount" in errors  # Total is already the member's ID
    job.refresh_from_db()
    assert job.mapping == {} and not ImportPreset.objects.exists()


def test_the_upload_page_reads_a_shopify_export_with_its_preset(admin_client, export):  # noqa: F811
    refused, _ = upload(admin_client, export.read_text(encoding="utf-8"), kind="members", preset="shopify")
    assert refused.status_code == 200 and refused.context["form"].errors["preset"]
    response, job = upload(admin_client, export.read_text(encoding="utf-8"), preset="shopify", name="orders_export_1.csv")
    assert job.status == ImportStatus.VALIDATED and job.preset == "shopify"
    detail = admin_client.get(response["Location"]).content.decode()
    assert "Shopify: 5 orders, 2 skipped as unpaid (pending 1, voided 1)" in detail
    assert not Order.objects.exists()
    admin_client.post(response["Location"], {"action": "all"})
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.created_count == 5
    assert Order.objects.count() == 5 and OrderLine.objects.count() == 6
    assert Member.objects.filter(external_id="SHOP-13900139000").exists()
