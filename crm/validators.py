import re
import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

CN_MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")  # ASCII digits only: \d takes any script's
_SEPARATORS = str.maketrans("", "", " -\t()（）")


def normalise_cn_mobile(raw: str) -> str:
    """Strip separators and a +86 / 0086 prefix, full-width digits made plain; validation is separate."""
    digits = unicodedata.normalize("NFKC", raw).strip().translate(_SEPARATORS)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def validate_cn_mobile(value: str) -> None:
    if value and not CN_MOBILE_RE.match(value):
        raise ValidationError(
            _("A mainland mobile number has 11 digits and starts with 13–19."), code="invalid_mobile"
        )


def coupon_days_field(*, default: int) -> models.PositiveSmallIntegerField:
    """How long a coupon is valid, as DOMAIN.md bounds it (7 to 14 days): for a campaign's or a
    journey step's coupons and for a coupon right's."""
    return models.PositiveSmallIntegerField(
        _("coupon valid days"), default=default, validators=[MinValueValidator(7), MaxValueValidator(14)],
        help_text=_("From its issue to the end of this many days after the day of issue (Beijing time): 7 on the 1st is valid through the 8th."),
    )
