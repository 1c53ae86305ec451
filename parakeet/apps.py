from django.apps import AppConfig


class ParakeetConfig(AppConfig):
    name = "parakeet"
    verbose_name = "Access (API tokens)"

    def ready(self):
        # Bind @shared_task to our app so tasks honour the eager/broker settings.
        from .celery import app  # noqa: F401
