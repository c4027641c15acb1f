"""Shared body of the import_* commands."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from crm.importing import shopify
from crm.importing.engine import run_import
from crm.importing.jobs import import_announce
from crm.importing.models import ImportPreset
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
        if options["preset"] == shopify.PRESET:
            if self.kind != "orders":
                raise CommandError(_("The shopify preset imports orders: use import_orders."))
            outcome = shopify.shopify_import(path, original_name=path.name, mode=mode, source=f"{path.name} (shopify)")
        else:
            outcome = run_import(SPECS[self.kind], path, original_name=path.name, mode=mode, source=path.name, mapping=self._mapping(options["preset"]))
        self._report(outcome, path)

    def _mapping(self, name: str) -> dict[str, str] | None:
        """A saved preset's mapping of fields to the file's headings (None: the canonical headings)."""
        if not name:
            return None
        preset = ImportPreset.objects.filter(name=name).first()
        if preset is None:
            known = ", ".join([shopify.PRESET, *ImportPreset.objects.values_list("name", flat=True)])
            raise CommandError(_("No such preset: %(name)s (known: %(known)s)") % {"name": name, "known": known})
        if preset.kind != self.kind:
            raise CommandError(_("The preset %(name)s reads %(kind)s files.") % {"name": preset.name, "kind": preset.get_kind_display()})
        return preset.mapping

    def _report(self, outcome, path: Path) -> None:
        """Errors, audit and signal of a committed import, the summary, the verdict (a Shopify file's tables each audited)."""
        for error in outcome.errors:
            self.stderr.write(str(error))
        if outcome.committed:
            import_announce(outcome, kind=self.kind, actor=None, file_name=f"{path.name} (command line)")
        errors = outcome.errors.count
        outcome.errors.close()
        if getattr(outcome, "summary", ""):
            self.stdout.write(outcome.summary)
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
        if errors:
            raise CommandError(_("%(count)d errors in %(file)s") % {"count": errors, "file": path.name}, returncode=1)
