"""Create the first admin login with a generated password, printed once; and a
login for the first demo group leader, who sees only his own community."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create superuser 'admin' with a generated password (printed); --reset-password makes a new one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--reset-password", action="store_true")

    def handle(self, *args, username: str, reset_password: bool, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None and not reset_password:
            self.stdout.write(
                f"Login '{username}' exists (forgot the password? scripts/start --reset-password)."
            )
            return
        password = secrets.token_urlsafe(12)
        if user is None:
            User.objects.create_superuser(username, "", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        self.stdout.write(self.style.SUCCESS(f"Admin login: {username} / {password}"))
        self._leader_login()

    def _leader_login(self) -> None:
        """The demo's first group leader gets a password too (a seeded leader has none)."""
        from django.contrib.auth.models import Group

        from crm import roles
        from crm.models import Community, GroupLeader

        leader = GroupLeader.objects.filter(user__isnull=False, user__is_superuser=False).select_related("user").order_by("pk").first()
        if leader is None:
            return
        password = secrets.token_urlsafe(12)
        leader.user.set_password(password)
        leader.user.is_staff = True
        leader.user.save(update_fields=["password", "is_staff"])
        group = Group.objects.filter(name=roles.LEADER).first()
        if group is not None:
            leader.user.groups.add(group)
        communities = "、".join(Community.objects.filter(leader=leader).values_list("name", flat=True))
        self.stdout.write(self.style.SUCCESS(f"Group leader login: {leader.user.username} / {password} (sees only {communities})"))
