from django.db import migrations

# The seeds' 千人千面: in the same live stream, S sees limited editions and C new-member prices.
OFFERS = [
    ("S", "铂金会员专享：限量新品抢先购", 0),
    ("A", "黄金会员：组合套装9折，再升一级享铂金礼遇", 0),
    ("B", "白银会员：本周秒杀爆品", 0),
    ("C", "新人专享价：9.9元三件小样", 0),
]


def add(apps, schema_editor):
    Tier = apps.get_model("segments", "Tier")
    Offer = apps.get_model("api", "Offer")
    for code, title, position in OFFERS:
        tier = Tier.objects.filter(code=code).first()
        if tier is not None:
            Offer.objects.get_or_create(tier=tier, title=title, defaults={"position": position, "products": []})


def remove(apps, schema_editor):
    apps.get_model("api", "Offer").objects.filter(title__in=[title for _code, title, _position in OFFERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("api", "0003_roles"), ("segments", "0002_defaults")]
    operations = [migrations.RunPython(add, remove)]
