from __future__ import annotations

from typing import Any

from saq import CronJob
from saq.types import Function

from ekimo.settings import Settings

functions: list[Function[Any]] = []


def cron_jobs(settings: Settings) -> list[CronJob[Any]]:
    return []
