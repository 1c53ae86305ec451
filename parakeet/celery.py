"""The Celery app. Eager (in-process) unless CELERY_BROKER_URL is set; see settings.

On Lambda without a broker (PARAKEET_TASKS_VIA_LAMBDA, on by default there) a task is not run inside
the web request, which API Gateway cuts at 29 s: `Task.apply_async` invokes the function itself
asynchronously (parakeet.lambda_handlers.dispatch) and the request answers 202 at once; Zappa's
handler then runs the task in its own invocation, with the function's timeout (PITFALLS BR-31).
"""
import os

from celery import Celery
from celery import Task as BaseTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parakeet.settings.base")


class Task(BaseTask):
    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None, link_error=None,
                    shadow=None, **options):
        from django.conf import settings

        if getattr(settings, "PARAKEET_TASKS_VIA_LAMBDA", False):
            from .lambda_handlers import dispatch

            if dispatch(self.name, list(args or ()), dict(kwargs or {})):
                return None
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)


app = Celery("parakeet", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
