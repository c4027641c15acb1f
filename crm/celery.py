import logging
import os
from pathlib import Path

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger(__name__)


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
    from django.db.backends.signals import connection_created

    wanted = settings.CELERY_WORKER_NICE
    if wanted > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
    connection_created.connect(_backend_yields, dispatch_uid="crm-backend-yields")


LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def _backend_yields(sender, connection, **kwargs) -> None:
    """The worker's PostgreSQL backend takes the worker's priority too, where it can.

    A recompute's or a send's work is mostly SQL, done by its backend process at the
    server's priority: a worker at nice 10 alone changed nothing measurable (bench/load.py).
    Only a server on this machine (a local host or socket), only a process that is a
    postgres backend as /proc shows it (not one in another pid namespace), never through a
    pooler (its server connections are shared), and only with the right to (the same user
    as the server, root, or CAP_SYS_NICE); otherwise nothing changes. The backend keeps the
    priority until the connection closes."""
    from django.conf import settings

    host = connection.settings_dict.get("HOST") or ""
    if connection.vendor != "postgresql" or settings.DATABASE_TRANSACTION_POOLING or not (host in LOCAL_HOSTS or host.startswith("/")):
        return
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return
        wanted = os.getpriority(os.PRIO_PROCESS, 0)
        if wanted > os.getpriority(os.PRIO_PROCESS, pid):
            os.setpriority(os.PRIO_PROCESS, pid, wanted)
    except OSError as error:  # no such process here, or not ours to change
        logger.info("the database backend %s keeps its priority: %s", pid, error)
