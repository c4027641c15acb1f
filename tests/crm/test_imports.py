"""The import engine against the database: every kind, bad rows, upserts."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from crm.importing.engine import run_import
from crm.importing.specs import SPECS
from crm.models import Category, Community, Consent, ConsentEvent, EngagementEvent, Member, MemberTag, Order, OrderLine, Product
from tests.crm.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")

MEMBERS = """external_id,name,mobile,gender,birthday,registered_at,community,tags,consent_sms,consent_wecom
M1,张丽,138 0013 8000,女,1970-03-05,2024/01/02 10:00,幸福里一群,爱买水果|宝妈,1,0
M2,王强,+8613900139000,M,19880101,2024-02-03,幸福里一群,,0,
"""
# The headings an export writes, in Chinese.
MEMBERS_ZH = """会员编号,姓名,手机号,性别,生日,注册时间,社群,标签,短信营销同意,企微营销同意
M1,张丽,13800138000,女,1970-03-05,2024-01-02 10:00,幸福里一群,爱买水果|宝妈,1,0
"""
BAD_MEMBERS = """external_id,name,mobile,gender,birthday,registered_at,community,tags,consent_sms,consent_wecom
M1,张丽,13800138000,女,1970-03-05,2024/01/02 10:00,幸福里一群,,1,0
M3,李梅,12345,F,,2024-02-03,阳光二群,,,
M4,赵六,13700137000,X,1990-13-01,2024-02-03,阳光二群,,2,
M1,重复,13800138000,F,,,,,,
"""


def state():
    """Everything an import can change, to compare before and after."""
    return {
        "members": sorted(Member.objects.values_list("external_id", "name", "mobile", "gender", "birthday", "age_band", "registered_at", "community__name")),
        "tags": sorted(MemberTag.objects.values_list("member__external_id", "tag__name")),
        "consents": sorted(Consent.objects.values_list("member__external_id", "channel", "granted", "changed_at")),
        "consent_events": ConsentEvent.objects.count(),
        "orders": sorted(Order.objects.values_list("order_no", "member__external_id", "ordered_at", "amount", "status", "channel", "coupon_code")),
        "lines": sorted(OrderLine.objects.values_list("order__order_no", "product__sku", "quantity", "unit_price", "is_promo")),
        "products": sorted(Product.objects.values_list("sku", "name", "category__name")),
        "events": sorted(EngagementEvent.objects.values_list("member__external_id", "kind", "occurred_at", "count")),
    }


def test_members_are_created_with_normalised_values(write_file):
    outcome = run_import(SPECS["members"], write_file("m.csv", MEMBERS), mode="all")
    assert outcome.committed and outcome.created == 2 and outcome.errors.count == 0
    zhang = Member.objects.get(external_id="M1")
    assert zhang.mobile == "13800138000"
    assert zhang.gender == "F"
    assert zhang.birthday == dt.date(1970, 3, 5)
    assert zhang.age_band == "55+"
    assert zhang.registered_at == dt.datetime(2024, 1, 2, 10, tzinfo=SH)
    assert zhang.community.name == "幸福里一群"
    assert sorted(zhang.tags.values_list("name", flat=True)) == ["宝妈", "爱买水果"]
    assert dict(zhang.consents.values_list("channel", "granted")) == {"sms": True, "wecom": False}
    # An empty consent cell says nothing: no consent row for M2's WeCom.
    assert dict(Member.objects.get(external_id="M2").consents.values_list("channel", "granted")) == {"sms": False}
    assert ConsentEvent.objects.filter(member=zhang, channel="sms", granted=True, source__contains="m.csv").exists()


def test_the_chinese_headings_of_an_export_are_accepted(write_file):
    outcome = run_import(SPECS["members"], write_file("会员.csv", MEMBERS_ZH, "gbk"), mode="all")
    assert outcome.committed, list(outcome.errors)
    assert Member.objects.get(external_id="M1").name == "张丽"


def test_every_bad_row_is_listed_and_nothing_is_written(write_file):
    outcome = run_import(SPECS["members"], write_file("bad.csv", BAD_MEMBERS), mode="all")
    errors = [(e.row_no, e.column, e.value) for e in outcome.errors]
    assert errors == [
        (3, "mobile", "12345"),
        (4, "gender", "X"),
        (4, "birthday", "1990-13-01"),
        (4, "consent_sms", "2"),
        (5, "external_id", "M1"),
    ]
    assert "duplicate of row 2" in list(outcome.errors)[-1].message
    assert outcome.error_rows == 3 and outcome.valid_rows == 1
    assert not outcome.committed
    assert not Member.objects.exists() and not Community.objects.exists() and not Consent.objects.exists()


def test_the_user_may_choose_to_import_only_the_valid_rows(write_file):
    outcome = run_import(SPECS["members"], write_file("bad.csv", BAD_MEMBERS), mode="valid_only")
    assert outcome.committed and outcome.created == 1
    assert list(Member.objects.values_list("external_id", flat=True)) == ["M1"]


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(write_file):
    MemberFactory(external_id="M2", name="旧名字")
    outcome = run_import(SPECS["members"], write_file("m.csv", MEMBERS), mode="dry_run")
    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 1, 0)
    assert not outcome.committed
    assert Member.objects.get(external_id="M2").name == "旧名字"
    assert not Member.objects.filter(external_id="M1").exists()


@pytest.mark.parametrize(
    "kind, text",
    [
        ("members", MEMBERS),
        ("orders", "order_no,member_external_id,ordered_at,amount,status,channel,coupon_code\nSO1,M1,2025-05-01 09:30,128.50,paid,小程序,\nSO2,M2,2025/05/02,0,已支付,,CP1\n"),
        ("order_lines", "order_no,sku,product_name,category,quantity,unit_price,is_promo\nSO1,SKU1,土鸡蛋,生鲜,2,39.80,1\nSO1,SKU2,洗衣液,日化,1,49.00,0\n"),
        ("events", "member_external_id,kind,occurred_at,count\nM1,share,2025-05-01 12:00,3\nM1,邀请,2025-05-01 12:00,1\n"),
    ],
)
def test_importing_a_file_twice_is_the_same_as_once(write_file, kind, text):
    if kind != "members":
        MemberFactory(external_id="M1"), MemberFactory(external_id="M2")
    if kind == "order_lines":
        OrderFactory(order_no="SO1", member=Member.objects.get(external_id="M1"))
    path = write_file("f.csv", text)
    first = run_import(SPECS[kind], path, mode="all")
    assert first.committed and first.created == 2, list(first.errors)
    after_first = state()
    second = run_import(SPECS[kind], path, mode="all")
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert state() == after_first


def test_a_changed_row_updates_only_what_the_file_has(write_file):
    member = MemberFactory(external_id="M1", name="旧", source_channel="门店扫码", birthday=dt.date(1980, 1, 1))
    outcome = run_import(SPECS["members"], write_file("m.csv", "external_id,name\nM1,新名字\n"), mode="all")
    assert (outcome.created, outcome.updated) == (0, 1)
    member.refresh_from_db()
    assert member.name == "新名字"
    # Columns the file does not have are left alone.
    assert member.source_channel == "门店扫码" and member.birthday == dt.date(1980, 1, 1)


def test_consent_changes_are_kept_as_history(write_file):
    run_import(SPECS["members"], write_file("a.csv", "external_id,consent_sms\nM1,1\n"), mode="all")
    run_import(SPECS["members"], write_file("b.csv", "external_id,consent_sms\nM1,1\n"), mode="all")
    run_import(SPECS["members"], write_file("c.csv", "external_id,consent_sms\nM1,0\n"), mode="all")
    history = list(ConsentEvent.objects.order_by("id").values_list("granted", "source"))
    assert history == [(True, "import: a.csv"), (False, "import: c.csv")]
    assert Consent.objects.get().granted is False


def test_personalised_recommendation_is_turned_off_and_on_by_the_file_and_an_empty_cell_leaves_it(write_file, members_m1_m2):
    """DOMAIN.md section 1: personalised recommendation on/off (PIPL art. 24) comes by import too."""
    text = "external_id,个性化推荐\nM1,0\nM2,1\nM3,\n"
    outcome = run_import(SPECS["members"], write_file("m.csv", text), mode="all")
    assert outcome.committed and outcome.ignored_columns == []
    flags = {m.external_id: (m.personalisation_opt_out, m.personalisation_opt_out_at is not None) for m in Member.objects.all()}
    assert flags == {"M1": (True, True), "M2": (False, False), "M3": (False, False)}
    opted_out_at = Member.objects.get(external_id="M1").personalisation_opt_out_at
    run_import(SPECS["members"], write_file("m2.csv", "external_id,personalised\nM1,0\nM2,\n"), mode="all")
    assert Member.objects.get(external_id="M1").personalisation_opt_out_at == opted_out_at  # the first opt-out's time stays
    run_import(SPECS["members"], write_file("m3.csv", "external_id,personalised\nM1,1\n"), mode="all")
    m1 = Member.objects.get(external_id="M1")
    assert (m1.personalisation_opt_out, m1.personalisation_opt_out_at) == (False, None)
    bad = run_import(SPECS["members"], write_file("m4.csv", "external_id,personalised\nM2,perhaps\n"), mode="all")
    assert [(e.row_no, e.column) for e in bad.errors] == [(2, "personalised")]


def test_the_member_file_names_each_communitys_group_leader_by_name_or_mobile(write_file):
    """DOMAIN.md section 1: the community and its group leader come by import too. The leader must
    be known (团长); a row naming none, an unknown or ambiguous one, or a second leader for a
    community is a bad row, and nothing is written."""
    from crm.models import Community
    from tests.crm.factories import GroupLeaderFactory

    wang = GroupLeaderFactory(display_name="王团长", mobile="13900001111")
    li = GroupLeaderFactory(display_name="李团长", mobile="13900002222")
    GroupLeaderFactory(display_name="张团长", mobile="13900003333")
    GroupLeaderFactory(display_name="张团长", mobile="13900004444")
    bad = (
        "external_id,community,团长\n"
        "M1,幸福里一群,王团长\nM2,幸福里一群,王团长\nM3,阳光二群,13900002222\n"
        "M4,,王团长\nM5,向阳三群,赵团长\nM6,幸福里一群,李团长\nM7,向阳三群,张团长\n"
    )
    outcome = run_import(SPECS["members"], write_file("m.csv", bad), mode="all")
    errors = {e.row_no: (e.column, e.message) for e in outcome.errors}
    assert set(errors) == {5, 6, 7, 8} and {column for column, _m in errors.values()} == {"leader"}
    assert "fill in the community" in errors[5][1] and "add him under 团长 first" in errors[6][1]
    assert "row 2 gives this community another group leader" in errors[7][1] and "write his mobile instead" in errors[8][1]
    assert not Member.objects.exists() and not Community.objects.exists()

    run_import(SPECS["members"], write_file("m.csv", bad), mode="valid_only")
    assert dict(Community.objects.values_list("name", "leader_id")) == {"幸福里一群": wang.pk, "阳光二群": li.pk}
    run_import(SPECS["members"], write_file("m2.csv", "external_id,community,leader\nM1,幸福里一群,13900002222\n"), mode="all")
    assert Community.objects.get(name="幸福里一群").leader_id == li.pk  # the community changes hands
    run_import(SPECS["members"], write_file("m3.csv", "external_id,community,leader\nM2,幸福里一群,\n"), mode="all")
    assert Community.objects.get(name="幸福里一群").leader_id == li.pk  # an empty cell leaves him


def test_tags_follow_the_file(write_file):
    run_import(SPECS["members"], write_file("a.csv", "external_id,tags\nM1,宝妈|健身\n"), mode="all")
    run_import(SPECS["members"], write_file("b.csv", "external_id,tags\nM1,健身|退休\n"), mode="all")
    assert sorted(Member.objects.get().tags.values_list("name", flat=True)) == ["健身", "退休"]


def test_orders_need_known_members_and_valid_amounts(write_file, members_m1_m2):
    text = (
        "order_no,member_external_id,ordered_at,amount\n"
        "SO1,M1,2025-05-01 09:30,128.50\n"
        "SO2,M9,2025-05-01,10\n"
        "SO3,M2,2025-05-01,-5\n"
        "SO1,M2,2025-05-02,1\n"
        "SO4,M2,2025-05-02,0\n"
    )
    outcome = run_import(SPECS["orders"], write_file("o.csv", text), mode="all")
    errors = {(e.row_no, e.column): e.message for e in outcome.errors}
    assert set(errors) == {(3, "member_external_id"), (4, "amount"), (5, "order_no")}
    assert "import the members first" in errors[(3, "member_external_id")]
    assert not Order.objects.exists()
    outcome = run_import(SPECS["orders"], write_file("o.csv", text), mode="valid_only")
    assert dict(Order.objects.values_list("order_no", "amount")) == {"SO1": Decimal("128.50"), "SO4": Decimal("0.00")}
    # A free trial order (0元购) is an order; its status defaults to paid.
    assert Order.objects.get(order_no="SO4").status == "paid"


@pytest.mark.parametrize("heading", ["refunded", "是否退款", "returned", "退货"])
def test_a_refund_flag_column_sets_each_orders_status_and_a_later_file_refunds_a_paid_order(write_file, members_m1_m2, heading):
    """Many shop exports carry the refund as a flag (1/0, 是/否), not as a status: it is read,
    never dropped as an unknown column that would count refunded orders as paid."""
    text = f"order_no,member_external_id,ordered_at,amount,{heading}\nSO1,M1,2025-05-01,100,0\nSO2,M1,2025-05-02,50,1\nSO3,M2,2025-05-03,80,是\nSO4,M2,2025-05-04,20,\n"
    outcome = run_import(SPECS["orders"], write_file("o.csv", text), mode="all")
    assert outcome.committed and outcome.ignored_columns == []
    assert dict(Order.objects.values_list("order_no", "status")) == {"SO1": "paid", "SO2": "refunded", "SO3": "refunded", "SO4": "paid"}
    again = run_import(SPECS["orders"], write_file("o2.csv", f"order_no,member_external_id,ordered_at,amount,{heading}\nSO1,M1,2025-05-01,100,1\n"), mode="all")
    assert (again.created, again.updated) == (0, 1) and Order.objects.get(order_no="SO1").status == "refunded"
    bad = run_import(SPECS["orders"], write_file("o3.csv", f"order_no,member_external_id,ordered_at,amount,{heading}\nSO5,M1,2025-05-05,10,maybe\n"), mode="all")
    assert [(e.row_no, e.column) for e in bad.errors] == [(2, "refunded")] and not Order.objects.filter(order_no="SO5").exists()


def test_a_returned_order_is_refunded(write_file, members_m1_m2):
    text = "order_no,member_external_id,ordered_at,amount,status\nSO1,M1,2025-05-01,100,returned\nSO2,M1,2025-05-02,50,已退货\n"
    run_import(SPECS["orders"], write_file("o.csv", text), mode="all")
    assert set(Order.objects.values_list("status", flat=True)) == {"refunded"}


def test_order_lines_create_products_and_categories(write_file, members_m1_m2):
    OrderFactory(order_no="SO1", member=members_m1_m2[0])
    text = "订单号,商品编码,商品名称,品类,数量,单价,促销\nSO1,SKU1,土鸡蛋30枚,生鲜,2,39.80,1\nSO9,SKU2,洗衣液,日化,1,49,0\n"
    outcome = run_import(SPECS["order_lines"], write_file("l.csv", text), mode="valid_only")
    assert [(e.row_no, e.column) for e in outcome.errors] == [(3, "order_no")]
    line = OrderLine.objects.select_related("product__category").get()
    assert (line.product.sku, line.product.name, line.product.category.name) == ("SKU1", "土鸡蛋30枚", "生鲜")
    assert (line.quantity, line.unit_price, line.is_promo) == (2, Decimal("39.80"), True)
    assert not Category.objects.filter(name="日化").exists()


def test_events_upsert_by_member_kind_and_time(write_file, members_m1_m2):
    path = write_file("e.csv", "member_external_id,kind,occurred_at,count\nM1,分享,2025-05-01 12:00,3\n")
    run_import(SPECS["events"], path, mode="all")
    outcome = run_import(SPECS["events"], write_file("e2.csv", "member_external_id,kind,occurred_at,count\nM1,share,2025-05-01 12:00,5\n"), mode="all")
    assert (outcome.created, outcome.updated) == (0, 1)
    assert EngagementEvent.objects.get().count == 5


def test_a_review_a_recipe_or_a_photo_post_is_user_content(write_file, members_m1_m2):
    text = "member_external_id,kind,occurred_at\nM1,评价,2025-05-01 12:00\nM1,食谱,2025-05-02 12:00\nM2,晒单,2025-05-03 12:00\nM2,review,2025-05-04 12:00\n"
    outcome = run_import(SPECS["events"], write_file("e.csv", text), mode="all")
    assert outcome.committed and set(EngagementEvent.objects.values_list("kind", flat=True)) == {"ugc"}


def test_a_missing_required_column_names_row_1(write_file):
    outcome = run_import(SPECS["orders"], write_file("o.csv", "order_no,amount\nSO1,1\n"), mode="all")
    assert [(e.row_no, e.column) for e in outcome.errors] == [(1, "member_external_id"), (1, "ordered_at")]
    assert outcome.total_rows == 0


def test_extra_columns_are_reported_not_fatal(write_file, members_m1_m2):
    outcome = run_import(SPECS["events"], write_file("e.csv", "member_external_id,kind,occurred_at,备注\nM1,share,2025-05-01,hi\n"), mode="all")
    assert outcome.committed and outcome.ignored_columns == ["备注"]


def test_blank_lines_are_skipped_and_row_numbers_match_the_spreadsheet(write_file, members_m1_m2):
    outcome = run_import(SPECS["events"], write_file("e.csv", "member_external_id,kind,occurred_at\n\nM1,share,2025-05-01\n,,\nM1,bad,2025-05-01\n"), mode="all")
    assert [(e.row_no, e.column) for e in outcome.errors] == [(5, "kind")]
    assert outcome.total_rows == 2


def test_xlsx_orders(tmp_path, members_m1_m2):
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["订单号", "会员编号", "下单时间", "金额"])
    workbook.active.append(["SO1", "M1", dt.datetime(2025, 5, 1, 9, 30), 99.9])
    path = tmp_path / "orders.xlsx"
    workbook.save(path)
    outcome = run_import(SPECS["orders"], path, mode="all")
    assert outcome.committed, list(outcome.errors)
    order = Order.objects.get()
    assert order.amount == Decimal("99.90") and order.ordered_at == dt.datetime(2025, 5, 1, 9, 30, tzinfo=SH)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner statistics")
def test_a_big_import_leaves_the_planner_statistics_of_what_it_wrote_current(write_file):
    """Autovacuum would analyze the grown tables only a minute or more later; a
    campaign launched meanwhile was planned for empty tables (ten minutes, not 25 s, at 1M)."""
    from crm.bulkload import ANALYZE_AFTER_ROWS

    rows = "".join(f"B{n},会员{n},,F,,2024-01-02,,,1,\n" for n in range(ANALYZE_AFTER_ROWS))
    outcome = run_import(SPECS["members"], write_file("big.csv", MEMBERS.splitlines()[0] + "\n" + rows), mode="all")
    assert outcome.committed and outcome.created == ANALYZE_AFTER_ROWS
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN ('crm_member', 'crm_consent')")
        estimates = dict(cursor.fetchall())
    assert estimates == {"crm_member": ANALYZE_AFTER_ROWS, "crm_consent": ANALYZE_AFTER_ROWS}


def test_the_earliest_business_date_is_a_setting_named_in_the_message(write_file, settings):
    MemberFactory(external_id="M1")
    text = "order_no,member_external_id,ordered_at,amount\nOLD1,M1,1998-06-01 10:00,50\n"
    refused = run_import(SPECS["orders"], write_file("old.csv", text), mode="all")
    [error] = list(refused.errors)
    assert error.column == "ordered_at" and "2000-01-01" in error.message and "CRM_EARLIEST_DATE" in error.message
    settings.CRM_EARLIEST_DATE = dt.date(1995, 1, 1)  # a programme older than 2000
    taken = run_import(SPECS["orders"], write_file("old.csv", text), mode="all")
    assert taken.created == 1 and Order.objects.get(order_no="OLD1").ordered_at.year == 1998
