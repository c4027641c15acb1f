"""The peer for bench/import.py: django-import-export's own import path, tuned.

    python bench/_import_export_peer.py FILE CACHED(0|1)

Prints the seconds import_data took for FILE (orders), then deletes those orders."""

import sys
import time

from _common import django_setup  # noqa: E402

django_setup(debug=False)

import tablib  # noqa: E402
from import_export import fields, instance_loaders, resources, widgets  # noqa: E402

from crm.models import Member, Order  # noqa: E402


class OrderImport(resources.ModelResource):
    member = fields.Field(attribute="member", column_name="member_external_id", widget=widgets.ForeignKeyWidget(Member, field="external_id"))

    class Meta:
        model = Order
        fields = ("order_no", "member", "ordered_at", "amount", "status", "channel", "coupon_code")
        import_id_fields = ("order_no",)
        use_bulk = True
        skip_diff = True
        batch_size = 1000


class CachedOrderImport(OrderImport):
    class Meta(OrderImport.Meta):
        instance_loader_class = instance_loaders.CachedInstanceLoader


def main() -> None:
    path, cached = sys.argv[1], sys.argv[2] == "1"
    with open(path, encoding="utf-8") as handle:
        dataset = tablib.Dataset().load(handle.read(), format="csv")
    resource = CachedOrderImport() if cached else OrderImport()
    started = time.perf_counter()
    result = resource.import_data(dataset, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    assert not result.has_errors() and not result.has_validation_errors()
    imported = Order.objects.filter(order_no__startswith="P").count()
    assert imported == len(dataset), (imported, len(dataset))
    Order.objects.filter(order_no__startswith="P").delete()
    print(seconds)


if __name__ == "__main__":
    main()
