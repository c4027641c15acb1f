"""Admin forms of the ladder and the circles, with the checks staff see next to the field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from segments.circles import CircleFilter, rules_from_cleaned
from segments.ladder import LadderError, ladder_validate
from segments.models import Circle, Tier
from segments.services import rung_from_tier

RULE_PREFIX = "rule_"


def candidate_ladder(tier: Tier):
    """The ladder as it would be with tier saved (tier may be new: id -1)."""
    others = Tier.objects.exclude(pk=tier.pk) if tier.pk else Tier.objects.all()
    rung = rung_from_tier(tier)
    if tier.pk is None:
        rung = type(rung)(**{**rung.__dict__, "id": -1})
    return ladder_validate([*(rung_from_tier(other) for other in others), rung])


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = (
            "code", "name", "rank", "is_catch_all", "max_recency_days", "orders_comparison", "orders_365",
            "spend_comparison", "spend_365", "community", "operators", "playbook",
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if cleaned.get("is_catch_all") and any(
            cleaned.get(name) is not None for name in ("max_recency_days", "orders_365", "spend_365")
        ):
            raise forms.ValidationError(_("The catch-all tier takes everyone else: leave its R, F and M empty."))
        try:
            candidate_ladder(self.instance_with(cleaned))
        except LadderError as error:
            message = {
                "ranks must be unique": _("Another tier already has this rank."),
                "exactly one tier must be the catch-all": _("Exactly one tier must be the catch-all."),
                "the catch-all tier must have the lowest rank": _("The catch-all tier must have the lowest rank."),
            }.get(str(error), str(error))
            raise forms.ValidationError(message) from error
        return cleaned

    def instance_with(self, cleaned: dict) -> Tier:
        """An unsaved tier with the form's values (the ladder part only), for the preview."""
        tier = Tier(pk=self.instance.pk)
        for name in self.Meta.fields:
            if name in cleaned and name != "operators":
                setattr(tier, name, cleaned[name])
        return tier


def _rule_fields() -> dict[str, forms.Field]:
    fields = {}
    for name, filter_ in CircleFilter.base_filters.items():
        field = filter_.field
        field.required = False
        fields[RULE_PREFIX + name] = field
    return fields


class CircleFormBase(forms.ModelForm):
    class Meta:
        model = Circle
        fields = ("name", "kind", "active", "usual_share", "description")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.rules:
            bound = CircleFilter(self.instance.rules).form
            for name in CircleFilter.base_filters:
                if name in self.instance.rules:
                    self.initial[RULE_PREFIX + name] = bound[name].value()

    def rules_filterset(self) -> CircleFilter:
        data: dict = {}
        for name in CircleFilter.base_filters:
            key = RULE_PREFIX + name
            if self._multiple(name):
                value = self.data.getlist(key) if hasattr(self.data, "getlist") else self.data.get(key, [])
            else:
                value = self.data.get(key)
            if value not in (None, "", []):
                data[name] = value
        return CircleFilter(data)

    @staticmethod
    def _multiple(name: str) -> bool:
        return isinstance(CircleFilter.base_filters[name].field, forms.MultipleChoiceField | forms.ModelMultipleChoiceField)

    def clean(self) -> dict:
        cleaned = super().clean()
        filterset = self.rules_filterset()
        if not filterset.form.is_valid():
            for name, errors in filterset.form.errors.items():
                for error in errors:
                    self.add_error(RULE_PREFIX + name if name in CircleFilter.base_filters else None, error)
            return cleaned
        rules = rules_from_cleaned(filterset.form.cleaned_data)
        if not rules:
            raise forms.ValidationError(_("Give the circle at least one rule, or it would hold every member."))
        self.instance.rules = rules
        return cleaned


CircleForm = type("CircleForm", (CircleFormBase,), _rule_fields())
