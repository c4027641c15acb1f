"""The member file: its columns (identity, household, consent per channel, tags) and its
set-based steps. Headings: the canonical English name or the Chinese heading that exports
write. Columns a file does not have are left as they are on existing members."""

# SQL here is assembled from table and column names defined in code (marked
# "nosec B608" for bandit); every value from a file or a user travels as a
# query parameter or through COPY, never inside the SQL text.

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.importing.engine import STAGE, Column, Context, Spec
from crm.importing.values import (
    CellError,
    age_band_for,
    choice_parser,
    parse_bool,
    parse_date,
    parse_past_datetime,
    parse_gender,
    parse_email,
    parse_mobile,
    text_parser,
)
from crm.models import AgeBand, Channel

CONSENT_COLUMNS = {
    "consent_sms": Channel.SMS,
    "consent_wecom": Channel.WECOM,
    "consent_email": Channel.EMAIL,
    "consent_push": Channel.PUSH,
}


def parse_tags(raw: str) -> str:
    """Tags separated by | as a JSON list, so that SQL can split them on both databases."""
    tags = sorted({tag.strip() for tag in raw.replace("｜", "|").split("|") if tag.strip()})
    for tag in tags:
        if len(tag) > 50:
            raise CellError(_("a tag is longer than 50 characters"))
    return json.dumps(tags, ensure_ascii=False)


_AGE_BANDS = {value: value for value in AgeBand.values if value} | {"55以上": "55+"}


class MemberSpec(Spec):
    kind = "members"
    tables = ("crm_member", "crm_consent", "crm_consentevent", "crm_membertag")
    columns = [
        Column("external_id", "会员编号", text_parser(64), required=True, aliases=("会员id", "member_id")),
        Column("name", "姓名", text_parser(64), default=""),
        Column("mobile", "手机号", parse_mobile, default="", aliases=("手机", "phone")),
        Column("gender", "性别", parse_gender, default="U"),
        Column("birthday", "生日", parse_date, sql_type="date"),
        Column(
            "age_band",
            "年龄段",
            choice_parser(_AGE_BANDS, gettext_lazy("use 18-24, 25-34, 35-44, 45-54 or 55+")),
            default="",
        ),
        Column("registered_at", "注册时间", parse_past_datetime, sql_type="datetime"),
        Column("community", "社群", text_parser(100), default=""),
        # The community's group leader, by his display name or mobile: he must be known (团长).
        Column("leader", "团长", text_parser(64), default="", aliases=("group_leader", "团长姓名", "团长手机")),
        Column("tags", "标签", parse_tags, default="[]"),
        Column("consent_sms", "短信营销同意", parse_bool, sql_type="bool"),
        Column("consent_wecom", "企微营销同意", parse_bool, sql_type="bool"),
        Column("consent_email", "邮件营销同意", parse_bool, sql_type="bool"),
        Column("consent_push", "推送营销同意", parse_bool, sql_type="bool"),
        Column("lives_alone", "独居", parse_bool, sql_type="bool", default=False),
        Column("has_elderly", "家有老人", parse_bool, sql_type="bool", default=False),
        Column("has_children", "家有孩子", parse_bool, sql_type="bool", default=False),
        Column("works_late", "常加班", parse_bool, sql_type="bool", default=False),
        Column("source_channel", "来源渠道", text_parser(32), default=""),
        Column("wechat_unionid", "微信unionid", text_parser(64), default=""),
        Column("email", "邮箱", parse_email, default="", aliases=("email", "电子邮箱")),
        # Personalised recommendation on (1) or off (0), PIPL art. 24; an empty cell leaves it as it is.
        Column(
            "personalised", "个性化推荐", parse_bool, sql_type="bool",
            aliases=("personalised_recommendation", "personalized", "personalization", "个性化推荐同意"),
        ),
    ]
    # Member columns copied from the stage as they are; the value used for a
    # new member when the file lacks the column.
    _plain = {
        "name": "''",
        "mobile": "''",
        "gender": "'U'",
        "birthday": "NULL",
        "age_band": "''",
        "registered_at": "NULL",
        "lives_alone": "false",
        "has_elderly": "false",
        "has_children": "false",
        "works_late": "false",
        "source_channel": "''",
        "wechat_unionid": "''",
        "email": "''",
    }

    def finish_row(self, values: dict[str, Any], now: dt.datetime) -> None:
        if not values["age_band"] and values["birthday"]:
            values["age_band"] = age_band_for(values["birthday"], timezone.localdate(now))

    def check(self, ctx: Context) -> None:
        ctx.reject_duplicates(["external_id"], "external_id")
        if "leader" in ctx.present:
            self._check_leaders(ctx)

    @staticmethod
    def _leaders(alias: str, select: str) -> str:
        return f"(SELECT {select} FROM crm_groupleader g WHERE g.display_name = {alias}.leader OR g.mobile = {alias}.leader)"  # nosec B608

    def _check_leaders(self, ctx: Context) -> None:
        """A leader named leads the row's community: the community is given, the leader known to
        the CRM (one, by display name or mobile), and the file gives the community one leader."""
        named = f"SELECT s.row_no, s.leader FROM {STAGE} s WHERE s.leader <> ''"  # nosec B608
        ctx.reject_rows(
            f"{named} AND s.community = '' ORDER BY s.row_no", [], "leader",
            lambda row: _("a group leader leads a community: fill in the community (社群) of this row too"),
        )
        ctx.reject_rows(
            f"{named} AND {self._leaders('s', 'COUNT(*)')} = 0 ORDER BY s.row_no", [], "leader",
            lambda row: _("no group leader with this name or mobile: add him under 团长 first"),
        )
        ctx.reject_rows(
            f"{named} AND {self._leaders('s', 'COUNT(*)')} > 1 ORDER BY s.row_no", [], "leader",
            lambda row: _("more than one group leader has this name: write his mobile instead"),
        )
        ctx.reject_rows(
            f"SELECT s.row_no, s.leader, f.row_no FROM {STAGE} s "  # nosec B608
            f"JOIN (SELECT community, MIN(row_no) AS first_row FROM {STAGE} WHERE leader <> '' GROUP BY community) d "
            f"ON d.community = s.community JOIN {STAGE} f ON f.row_no = d.first_row "
            f"WHERE s.leader <> '' AND s.row_no > f.row_no AND {self._leaders('s', 'MIN(g.id)')} <> {self._leaders('f', 'MIN(g.id)')} "
            f"ORDER BY s.row_no",
            [], "leader",
            lambda row: _("row %(row)d gives this community another group leader") % {"row": row[2]},
        )

    def touched_members_sql(self) -> str:
        return f"SELECT m.id AS member_id FROM {STAGE} s JOIN crm_member m ON m.external_id = s.external_id"  # nosec B608

    def merge(self, ctx: Context) -> tuple[int, int]:
        cursor = ctx.cursor
        present = ctx.present | ({"age_band"} if "birthday" in ctx.present else set())
        if "community" in present:
            cursor.execute(
                f"INSERT INTO crm_community (name, created_at) SELECT DISTINCT community, %s FROM {STAGE} "  # nosec B608
                "WHERE community <> '' ON CONFLICT (name) DO NOTHING",
                [ctx.now_param()],
            )
        if "leader" in present:
            cursor.execute(
                f"UPDATE crm_community SET leader_id = x.leader_id FROM ("  # nosec B608
                f"SELECT community, MIN(leader_id) AS leader_id FROM ("
                f"SELECT s.community AS community, {self._leaders('s', 'MIN(g.id)')} AS leader_id FROM {STAGE} s WHERE s.leader <> '') y "
                f"GROUP BY community) x "
                f"WHERE crm_community.name = x.community AND (crm_community.leader_id IS NULL OR crm_community.leader_id <> x.leader_id)"
            )
        values = {"external_id": "s.external_id"}
        for column, absent in self._plain.items():
            values[column] = f"s.{column}" if column in present else absent
        values["community_id"] = "c.id" if "community" in present else "NULL"
        values["personalisation_opt_out"] = "false"
        values["created_at"] = "%(now)s"
        update = [column for column in self._plain if column in present]
        if "community" in present:
            update.append("community_id")
        counts = ctx.upsert(
            table="crm_member",
            key=["external_id"],
            values=values,
            update=update,
            source_sql=f"{STAGE} s LEFT JOIN crm_community c ON c.name = s.community",
            params={"now": ctx.now_param()},
            # An erased member stays erased, whatever the shop system still exports.
            update_only_where="t.erased_at IS NULL",
        )
        cursor.execute(f"DELETE FROM {STAGE} WHERE external_id IN (SELECT external_id FROM crm_member WHERE erased_at IS NOT NULL)")  # nosec B608
        if "personalised" in present:
            self._merge_personalised(ctx)
        if "tags" in present:
            self._merge_tags(ctx)
        for column, channel in CONSENT_COLUMNS.items():
            if column in present:
                self._merge_consent(ctx, column, channel)
        return counts

    def _merge_personalised(self, ctx: Context) -> None:
        """Turned off: opted out from now (an earlier opt-out keeps its time); turned on: no opt-out."""
        ctx.cursor.execute(
            f"UPDATE crm_member SET personalisation_opt_out = NOT s.personalised, "  # nosec B608
            f"personalisation_opt_out_at = CASE WHEN s.personalised THEN NULL "
            f"ELSE COALESCE(crm_member.personalisation_opt_out_at, %s) END "
            f"FROM {STAGE} s WHERE s.external_id = crm_member.external_id AND s.personalised IS NOT NULL "
            f"AND crm_member.erased_at IS NULL AND crm_member.personalisation_opt_out = s.personalised",
            [ctx.now_param()],
        )

    def _merge_tags(self, ctx: Context) -> None:
        if ctx.postgres:
            tags = f"SELECT s.external_id, t.value AS tag FROM {STAGE} s CROSS JOIN LATERAL jsonb_array_elements_text(s.tags::jsonb) AS t(value)"  # nosec B608
        else:
            tags = f"SELECT s.external_id, j.value AS tag FROM {STAGE} s, json_each(s.tags) j"  # nosec B608
        cursor = ctx.cursor
        cursor.execute(f"INSERT INTO crm_tag (name) SELECT DISTINCT tag FROM ({tags}) x WHERE true ON CONFLICT (name) DO NOTHING")  # nosec B608
        cursor.execute(
            f"DELETE FROM crm_membertag WHERE member_id IN ( "  # nosec B608
            f"SELECT m.id FROM {STAGE} s JOIN crm_member m ON m.external_id = s.external_id) "
            f"AND NOT EXISTS ( "
            f"SELECT 1 FROM ({tags}) x JOIN crm_member m ON m.external_id = x.external_id "
            f"JOIN crm_tag t ON t.name = x.tag "
            f"WHERE m.id = crm_membertag.member_id AND t.id = crm_membertag.tag_id)"
        )
        cursor.execute(
            f"INSERT INTO crm_membertag (member_id, tag_id) "  # nosec B608
            f"SELECT m.id, t.id FROM ({tags}) x JOIN crm_member m ON m.external_id = x.external_id "
            f"JOIN crm_tag t ON t.name = x.tag WHERE true "
            f"ON CONFLICT (member_id, tag_id) DO NOTHING"
        )

    def _merge_consent(self, ctx: Context, column: str, channel: str) -> None:
        """Record a change of consent as an event (the proof), then set the current state."""
        source = f"import: {ctx.source}"[:120]
        if channel not in Channel.values:  # it is inlined below as a literal
            raise ValueError(channel)
        ctx.cursor.execute(
            f"INSERT INTO crm_consentevent (member_id, channel, granted, occurred_at, source) "  # nosec B608
            f"SELECT m.id, %s, s.{column}, %s, %s FROM {STAGE} s "
            f"JOIN crm_member m ON m.external_id = s.external_id "
            f"LEFT JOIN crm_consent c ON c.member_id = m.id AND c.channel = %s "
            f"WHERE s.{column} IS NOT NULL AND (c.id IS NULL OR c.granted <> s.{column})",
            [channel, ctx.now_param(), source, channel],
        )
        ctx.upsert(
            table="crm_consent",
            key=["member_id", "channel"],
            values={
                "member_id": "m.id",
                "channel": f"'{channel}'",
                "granted": f"s.{column}",
                "changed_at": "%(now)s",
                "source": "%(source)s",
            },
            update=["granted", "changed_at", "source"],
            changed_when=["granted"],
            source_sql=f"{STAGE} s JOIN crm_member m ON m.external_id = s.external_id AND s.{column} IS NOT NULL",
            params={"now": ctx.now_param(), "source": source},
        )
