"""The roles staff hold, as Django groups. A data migration applies them; a
later issue that adds models adds its permissions here and a migration that
calls roles_sync again."""

from __future__ import annotations

# Permission codenames per role, as "app_label.codename". "app_label.*" is every
# permission of that app.
VIEW_CORE = [
    "crm.view_member",
    "crm.view_order",
    "crm.view_orderline",
    "crm.view_engagementevent",
    "crm.view_consent",
    "crm.view_consentevent",
    "crm.view_community",
    "crm.view_groupleader",
    "crm.view_product",
    "crm.view_category",
    "crm.view_tag",
    "crm.view_membertag",
]
# Operators see the members of the tiers their role operates (segments.Tier.operators), not everyone.
OPERATOR = [
    *VIEW_CORE,
    "crm.add_member",
    "crm.change_member",
    "crm.add_consent",
    "crm.change_consent",
    "crm.add_membertag",
    "crm.change_membertag",
    "crm.delete_membertag",
    "crm.add_order",
    "crm.change_order",
    "crm.add_orderline",
    "crm.change_orderline",
    "crm.add_engagementevent",
    "crm.change_engagementevent",
    "crm.add_tag",
    "crm.view_importjob",
    "crm.add_importjob",
    "crm.export_member",
    "crm.export_order",
    "crm.export_orderline",
    "crm.export_engagementevent",
]
VIEW_SEGMENTS = [
    "segments.view_tier",
    "segments.view_circle",
    "segments.view_membermetrics",
    "segments.view_tierchange",
    "segments.view_tierpin",
    "segments.view_tierreview",
    "segments.view_groupmove",
    "segments.view_recomputerun",
    "segments.view_churnfit",
]
OPERATOR += [
    *VIEW_SEGMENTS,
    "segments.add_tierpin",
    "segments.change_tierpin",
    "segments.change_tierreview",
    "segments.change_groupmove",
]
VIEW_CAMPAIGNS = [
    "campaigns.view_campaign",
    "campaigns.view_variant",
    "campaigns.view_messagetemplate",
    "campaigns.view_delivery",
    "campaigns.view_coupon",
    "campaigns.view_salutationrule",
    "campaigns.view_bannedword",
    "campaigns.view_sendingpolicy",
    "campaigns.view_inboundreply",
    "campaigns.view_journey",
    "campaigns.view_journeystep",
    "campaigns.view_enrolment",
    "campaigns.view_worklistitem",
    "campaigns.view_worklistrule",
    "campaigns.view_worklistsettings",
    "campaigns.view_kpisnapshot",
    "campaigns.view_kpithreshold",
    "campaigns.view_kpisettings",
    "campaigns.view_invitesettings",
    "campaigns.view_invitereward",
]
VIEW_LOYALTY = [
    "loyalty.view_right",
    "loyalty.view_earningrule",
    "loyalty.view_tierpoints",
    "loyalty.view_loyaltysettings",
    "loyalty.view_growthentry",
    "loyalty.view_pointsentry",
    "loyalty.view_balance",
    "loyalty.view_redemption",
    "loyalty.view_adjustment",
    "loyalty.view_settlerun",
]
# Operators redeem points for their members; adjusting a ledger by hand is HQ's.
OPERATOR += [*VIEW_LOYALTY, "loyalty.add_redemption"]
# A group leader reads his own community's worklist and marks what happened.
LEADER_WORKLIST = ["campaigns.view_worklistitem", "campaigns.change_worklistitem", "campaigns.view_kpisnapshot"]
OPERATOR += [
    *VIEW_CAMPAIGNS,
    "campaigns.add_campaign",
    "campaigns.change_campaign",
    "campaigns.add_variant",
    "campaigns.change_variant",
    "campaigns.delete_variant",
    "campaigns.add_messagetemplate",
    "campaigns.change_messagetemplate",
]
# The shop's API: operators edit their tiers' offers; keys and the webhook outbox are HQ's.
VIEW_API = ["api.view_apiclient", "api.view_apiusage", "api.view_offer", "api.view_webhookevent"]
OPERATOR += ["api.view_offer", "api.add_offer", "api.change_offer", "api.delete_offer"]
ROLES: dict[str, list[str]] = {
    "总部策略 HQ strategist": ["crm.*", "segments.*", "loyalty.*", "campaigns.*", "api.*", "django_celery_beat.*", "django_celery_results.view_taskresult"],
    "S/A 运营 S/A operator": OPERATOR,
    "B/C 运营 B/C operator": OPERATOR,
    "团长 group leader": [*VIEW_CORE, "segments.view_tier", "segments.view_membermetrics", "segments.view_tierchange", *LEADER_WORKLIST],
    "审计 auditor": [
        *VIEW_CORE, *VIEW_SEGMENTS, *VIEW_LOYALTY, *VIEW_CAMPAIGNS, *VIEW_API, "segments.view_segmentsettings", "crm.view_all_members", "crm.view_importjob",
        "crm.view_auditevent", "django_celery_beat.view_periodictask",
    ],
}
HQ, SA_OPERATOR, BC_OPERATOR, LEADER, AUDITOR = ROLES


def roles_sync(apps) -> None:
    """Create or update the groups; works with the migration's app registry."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            found = Permission.objects.filter(content_type__app_label=app_label)
            if codename != "*":
                found = found.filter(codename=codename)
            permissions.extend(found)
        group.permissions.set(permissions)
