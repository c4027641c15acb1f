from celery import shared_task

from crm.importing.jobs import import_job_run, import_jobs_sweep


@shared_task(acks_late=True)
def import_job_task(job_id: int, mode: str) -> None:
    import_job_run(job_id=job_id, mode=mode)


@shared_task
def import_jobs_sweep_task() -> int:
    return import_jobs_sweep()
