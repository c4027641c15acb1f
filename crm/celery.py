import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _connections_tidy(task=None, **kwargs) -> None:
    """Django's own rule for a connection between tasks, as between requests:
    closed once older than CONN_MAX_AGE or broken, else kept (settings sets
    CELERY_DB_REUSE_MAX so that Celery's fixup does not close it every time).
    Not for a task run eagerly: it runs inside its caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect  # the worker's main process (where the solo and threads pools run tasks)
@worker_process_init.connect  # each process of a prefork pool
def _yield_to_people(**kwargs) -> None:
    """A worker runs at a lower OS priority (CELERY_WORKER_NICE): where it shares
    a machine with the web server, a request's CPU comes before a batch's, and an
    idle machine still gives the worker all of it. Never raises a priority the
    process was started with (nice -n 15 celery … keeps 15)."""
    from django.conf import settings

    wanted = settings.CELERY_WORKER_NICE
    if wanted > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
