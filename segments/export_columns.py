"""Columns that other apps add to export_member_metrics.

segments knows nothing of the apps above it (DESIGN.md): an app that has
figures per member as of a day (loyalty's growth value and points) registers
a provider here from its AppConfig.ready(), and the export asks every
provider for each chunk of members."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnProvider:
    headers: tuple[str, ...]
    # (member ids, as-of day) -> {member id: one value per header}; a member left out gets empty cells
    values: Callable[[Sequence[int], dt.date], dict[int, tuple]]


PROVIDERS: list[ColumnProvider] = []


def register(provider: ColumnProvider) -> None:
    if provider not in PROVIDERS:
        PROVIDERS.append(provider)
