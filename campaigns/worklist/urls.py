"""The group leader's phone pages, mounted at /leader/ (crm/urls.py)."""

from django.urls import path

from campaigns.worklist import phone

app_name = "leader"
urlpatterns = [
    path("", phone.today, name="today"),
    path("items/<int:item_id>/outcome/", phone.outcome, name="outcome"),
    path("items/<int:item_id>/call/", phone.call, name="call"),
    path("members/", phone.members, name="members"),
    path("members/<int:member_id>/", phone.member, name="member"),
]
