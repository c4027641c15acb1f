from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from campaigns.dashboard.health import healthz
from campaigns.views import sms_replies
from crm.admin_changelist import harden
from crm.admin_site import arrange

harden(admin.site)  # after every app's admin module has registered (autodiscover runs first)
arrange(admin.site)

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("hooks/sms/replies/", sms_replies, name="sms_replies"),
    path("healthz", healthz, name="healthz"),
    path("api/", include("api.urls")),
    path("leader/", include("campaigns.worklist.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
