"""Finding members in the list, as staff do."""

import pytest

from tests.crm.factories import CommunityFactory, MemberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_members_by_typing_part_of_a_community_name(staff_login, live_server):
    sunny = CommunityFactory(name="阳光花园2群")
    MemberFactory.create_batch(2, community=CommunityFactory(name="幸福里1群"))
    target = MemberFactory(community=sunny, name="刘芳")
    page = staff_login
    page.goto(f"{live_server.url}/admin/crm/member/")
    page.click("#id_community + .select2 .select2-selection")
    page.fill(".select2-search__field", "阳光")
    page.click(".select2-results__option:has-text('阳光花园2群')")
    page.click(".crm-filter-actions button")
    page.wait_for_url("**community=*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert target.external_id in rows.first.inner_text() and "刘芳" in rows.first.inner_text()
    # The chosen community stays shown in the filter box.
    assert "阳光花园2群" in page.locator("#id_community + .select2").inner_text()
