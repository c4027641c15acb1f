"""Who may see which members. Enforced in the admin's querysets (lists, pages,
actions, exports and autocomplete all go through them), not in menus.

Default deny: a user without crm.view_all_members sees only the members of the
communities he leads as a group leader, and nobody's otherwise."""

from __future__ import annotations

from django.db.models import QuerySet


def sees_all_members(user) -> bool:
    return user.is_superuser or user.has_perm("crm.view_all_members")


def scope_to_user(queryset: QuerySet, user, member_path: str) -> QuerySet:
    """Limit queryset to what user may see; member_path leads from its model to Member ("" for Member itself)."""
    if sees_all_members(user):
        return queryset
    prefix = f"{member_path}__" if member_path else ""
    return queryset.filter(**{f"{prefix}community__leader__user": user})


def scope_communities(queryset: QuerySet, user) -> QuerySet:
    if sees_all_members(user):
        return queryset
    return queryset.filter(leader__user=user)
