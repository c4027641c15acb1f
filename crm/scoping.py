"""Who may see which members. Enforced in the admin's querysets (lists, pages,
actions, exports and autocomplete all go through them), not in menus.

Default deny: a user without crm.view_all_members sees only the members of the
communities he leads as a group leader, plus what other apps grant through
SCOPE_EXTENSIONS (segments: the members of the tiers his role operates), and
nobody's otherwise. crm itself knows nothing of tiers."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q, QuerySet

# Each takes (user, prefix) and returns a Q over the model reached by prefix
# ("" for Member itself, "member__" from an order), or None when it grants nothing.
SCOPE_EXTENSIONS: list[Callable[[object, str], Q | None]] = []


def sees_all_members(user) -> bool:
    return user.is_superuser or user.has_perm("crm.view_all_members")


def _extensions(user, prefix: str) -> list[Q]:
    return [q for q in (extension(user, prefix) for extension in SCOPE_EXTENSIONS) if q is not None]


def sees_many_members(user) -> bool:
    """Everyone, or a whole layer (an operator's tiers): more than a leader's few communities."""
    return sees_all_members(user) or bool(_extensions(user, ""))


def scope_to_user(queryset: QuerySet, user, member_path: str) -> QuerySet:
    """Limit queryset to what user may see; member_path leads from its model to Member ("" for Member itself)."""
    if sees_all_members(user):
        return queryset
    prefix = f"{member_path}__" if member_path else ""
    condition = Q(**{f"{prefix}community__leader__user": user})
    for extension in _extensions(user, prefix):
        condition |= extension
    return queryset.filter(condition)


def scope_communities(queryset: QuerySet, user) -> QuerySet:
    """Community names are not personal data: whoever works a whole layer sees them all."""
    if sees_many_members(user):
        return queryset
    return queryset.filter(leader__user=user)
