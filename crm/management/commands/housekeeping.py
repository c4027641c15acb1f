"""Delete records of routine work older than their retention (crm.housekeeping); the beat runs it nightly."""

from django.core.management.base import BaseCommand

from crm.housekeeping import housekeeping


class Command(BaseCommand):
    help = (
        "Delete the runs of single orders' recomputes and settles, kept Idempotency-Key answers, finished webhook "
        "events and expired sessions once older than their retention (RETENTION_*_DAYS); --dry-run only counts them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, dry_run: bool, **options) -> None:
        report = housekeeping(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for pruned in report:
            self.stdout.write(f"{pruned.label} (kept {pruned.days} days): {verb} {pruned.rows:,}")
        self.stdout.write(f"In all: {verb} {sum(pruned.rows for pruned in report):,} rows.")
