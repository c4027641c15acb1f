from collections.abc import Iterable, Iterator

from celery import shared_task

from crm.importing.jobs import import_job_run, import_jobs_sweep

# One task carries at most this many members (an import of a million rows enqueues a few hundred
# tasks, never one per row): the tier recompute's, the settle's, the coupon matching's.
MEMBERS_PER_TASK = 5_000


def member_batches(member_ids: Iterable[int]) -> Iterator[list[int]]:
    """The members, each once and in id order, in parts of MEMBERS_PER_TASK: a task each."""
    ordered = sorted(set(member_ids))
    for start in range(0, len(ordered), MEMBERS_PER_TASK):
        yield ordered[start : start + MEMBERS_PER_TASK]


@shared_task(acks_late=True)
def import_job_task(job_id: int, mode: str) -> None:
    import_job_run(job_id=job_id, mode=mode)


@shared_task
def import_jobs_sweep_task() -> int:
    return import_jobs_sweep()


@shared_task
def housekeeping_task() -> dict[str, int]:
    from crm.housekeeping import housekeeping

    return {pruned.label: pruned.rows for pruned in housekeeping()}
