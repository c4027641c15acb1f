"""The product page's "notify past buyers": a draft restock reminder campaign."""

from __future__ import annotations


from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import (
    Campaign,
    MessageTemplate,
    Variant,
)
from crm.audit import audit_record
from crm.models import AuditAction, Product

RESTOCK_TEMPLATE = "补货提醒"


# The product page: "notify past buyers" starts a draft restock reminder that
# goes through the usual approval, dry run and outbox.
@admin.action(description=_("Notify past buyers (restock or offer)"), permissions=["view"])
def notify_past_buyers(modeladmin, request, queryset):
    if not request.user.has_perm("campaigns.add_campaign"):
        modeladmin.message_user(request, _("You may not create campaigns."), messages.ERROR)
        return None
    products = list(queryset[:2])
    if len(products) != 1:
        modeladmin.message_user(request, _("Choose exactly one product."), messages.WARNING)
        return None
    product = products[0]
    template = MessageTemplate.objects.filter(name=RESTOCK_TEMPLATE).first() or MessageTemplate.objects.filter(body__contains="{{ product }}").first()
    if template is None:
        modeladmin.message_user(request, _("Create a message template that uses {{ product }} first."), messages.ERROR)
        return None
    stamp = timezone.localtime().strftime("%m%d %H:%M")
    campaign = Campaign.objects.create(
        name=f"{product.name} 补货提醒 {stamp}"[:100], channel=template.channel, purpose=template.purpose,
        target_product=product, created_by=request.user,
    )
    Variant.objects.create(campaign=campaign, label="A", template=template, share=100)
    audit_record(actor=request.user, action=AuditAction.CAMPAIGN, summary=f"restock reminder drafted: {campaign.name}", obj=campaign, request=request)
    modeladmin.message_user(
        request, _("Draft ready: members who bought %(product)s in the last %(days)d days. Check the dry run, then submit it for approval.")
        % {"product": product.name, "days": campaign.target_product_days},
    )
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))


product_admin = admin.site.get_model_admin(Product)
product_admin.actions = (*(product_admin.actions or ()), notify_past_buyers)
