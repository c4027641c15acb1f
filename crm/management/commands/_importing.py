"""Shared body of the import_* commands."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from crm.importing import shopify
from crm.importing.engine import run_import
from crm.importing.jobs import audit_import, import_committed
from crm.importing.models import ImportJob, ImportPreset
from crm.importing.specs import SPECS


class ImportCommand(BaseCommand):
    kind: str

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="CSV (UTF-8, UTF-8 with BOM or GBK) or .xlsx")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--dry-run", action="store_true", help="check the file and write nothing")
        group.add_argument(
            "--valid-only",
            action="store_true",
            help="import the valid rows even when some rows are bad (default: nothing unless every row is valid)",
        )
        parser.add_argument(
            "--preset", default="", metavar="NAME",
            help="read the file's columns through a preset: one saved on the check page, or shopify (orders only: "
            "Shopify's order export, orders and lines in one import)",
        )

    def handle(self, *args, **options) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(_("No such file: %(path)s") % {"path": path})
        mode = "dry_run" if options["dry_run"] else "valid_only" if options["valid_only"] else "all"
        mapping = None
        if options["preset"] == shopify.PRESET:
            return self._shopify(path, mode)
        if options["preset"]:
            preset = ImportPreset.objects.filter(name=options["preset"]).first()
            if preset is None:
                known = ", ".join([shopify.PRESET, *ImportPreset.objects.values_list("name", flat=True)])
                raise CommandError(_("No such preset: %(name)s (known: %(known)s)") % {"name": options["preset"], "known": known})
            if preset.kind != self.kind:
                raise CommandError(_("The preset %(name)s reads %(kind)s files.") % {"name": preset.name, "kind": preset.get_kind_display()})
            mapping = preset.mapping
        outcome = run_import(SPECS[self.kind], path, original_name=path.name, mode=mode, source=path.name, mapping=mapping)
        for error in outcome.errors:
            self.stderr.write(str(error))
        if outcome.committed:
            audit_import(actor=None, kind=self.kind, file_name=f"{path.name} (command line)", outcome=outcome)
            import_committed.send(sender=ImportJob, job=None, kind=self.kind, member_ids=outcome.member_ids)
        outcome.errors.close()
        if outcome.ignored_columns:
            self.stdout.write(_("Columns not used: %(columns)s") % {"columns": ", ".join(outcome.ignored_columns)})
        summary = _(
            "%(rows)d rows: %(valid)d valid, %(bad)d with errors; new %(created)d, changed %(updated)d, unchanged %(unchanged)d."
        ) % {
            "rows": outcome.total_rows,
            "valid": outcome.valid_rows,
            "bad": outcome.error_rows,
            "created": outcome.created,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
        }
        self.stdout.write(summary)
        if outcome.dry_run:
            self.stdout.write(_("Dry run: nothing was written."))
        elif outcome.committed:
            self.stdout.write(self.style.SUCCESS(_("Imported.")))
        else:
            self.stdout.write(self.style.ERROR(_("Nothing was written: correct the rows above, or use --valid-only.")))
        if outcome.errors.count:
            raise CommandError(
                _("%(count)d errors in %(file)s") % {"count": outcome.errors.count, "file": path.name}, returncode=1
            )

    def _shopify(self, path: Path, mode: str) -> None:
        if self.kind != "orders":
            raise CommandError(_("The shopify preset imports orders: use import_orders."))
        outcome = shopify.shopify_import(path, original_name=path.name, mode=mode, source=f"{path.name} (shopify)")
        for error in outcome.errors:
            self.stderr.write(str(error))
        if outcome.committed:
            for kind, result in outcome.tables.items():
                audit_import(actor=None, kind=kind, file_name=f"{path.name} (command line, shopify)", outcome=result)
            import_committed.send(sender=ImportJob, job=None, kind="orders", member_ids=outcome.member_ids)
        self.stdout.write(outcome.summary)
        self.stdout.write(
            _("Orders new %(created)d, changed %(updated)d, unchanged %(unchanged)d; %(errors)d errors.")
            % {"created": outcome.created, "updated": outcome.updated, "unchanged": outcome.unchanged, "errors": outcome.errors.count}
        )
        outcome.errors.close()
        if outcome.dry_run:
            self.stdout.write(_("Dry run: nothing was written."))
        elif outcome.committed:
            self.stdout.write(self.style.SUCCESS(_("Imported.")))
        else:
            self.stdout.write(self.style.ERROR(_("Nothing was written: correct the rows above, or use --valid-only.")))
        if outcome.errors.count:
            raise CommandError(_("%(count)d errors in %(file)s") % {"count": outcome.errors.count, "file": path.name}, returncode=1)
