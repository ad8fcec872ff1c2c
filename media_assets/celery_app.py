"""The Celery app a worker serves: ``celery -A media_assets.celery_app worker -Q gpu`` (or
``-Q cpu``). It reads the broker from the same variables as the executor
(``media_assets.executors.celery_settings``) and registers dagster-celery's step task, which loads
the job from this package and writes the step's events to the instance the run names."""

import os

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from media_assets.executors import CELERY_APP_SETTINGS, celery_settings

_broker, _backend = celery_settings(os.environ)
app = make_app(
    CeleryExecutor.for_cli(
        broker=_broker, backend=_backend, config_source=CELERY_APP_SETTINGS
    ).app_args()
)
execute_plan = create_task(app)
