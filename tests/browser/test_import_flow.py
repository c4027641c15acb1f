"""An ops staff member's import, in the browser, in Chinese."""

import pytest

from crm.models import Member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = (
    "会员编号,姓名,手机号,性别,注册时间,社群\n"
    "M1,张丽,13800138000,女,2025-01-02,幸福里1群\n"
    "M2,王强,12345,男,2025-01-03,幸福里1群\n"
    "M3,李梅,13700137000,女,2025-13-01,幸福里1群\n"
).encode("gbk")  # as Excel on Chinese Windows saves it


def test_import_a_csv_see_the_bad_rows_then_import_the_valid_ones(staff_login, live_server, tmp_path):
    page = staff_login
    assert "私域会员运营" in page.title()
    page.goto(f"{live_server.url}/admin/crm/member/")
    page.click("a.import_link")
    path = tmp_path / "会员.csv"
    path.write_bytes(CSV)
    page.set_input_files("input[name=file]", str(path))
    page.click("input[type=submit]")

    status = page.locator("[data-testid=import-status]")
    assert "已检查，待确认" in status.inner_text()
    errors = page.locator("[data-testid=import-errors] tbody tr")
    assert errors.count() == 2
    first, second = errors.nth(0).inner_text(), errors.nth(1).inner_text()
    assert "3" in first and "mobile" in first and "12345" in first and "11 位" in first
    assert "4" in second and "registered_at" in second and "2025-13-01" in second
    assert not Member.objects.exists()

    page.click("button[value=valid_only]")
    assert "已导入" in page.locator("[data-testid=import-status]").inner_text()
    page.click("text=查看导入的数据")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "张丽" in rows.first.inner_text() and "138****8000" in rows.first.inner_text()
    assert "13800138000" not in page.content()
