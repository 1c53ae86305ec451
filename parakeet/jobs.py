"""What every background job row shares: a status, timings and an error (NetBox's "every job leaves a row")."""
from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"


class JobQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The jobs `user` may see: their own and the desk's (started by a command or the daily chain, no
        requester); staff see every one. A trader's research is theirs, as their portfolios are."""
        if user.is_staff:
            return self
        return self.filter(models.Q(requested_by=user) | models.Q(requested_by__isnull=True))


class Job(models.Model):
    status = models.CharField(max_length=8, choices=JobStatus.choices, default=JobStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def duration(self):
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at
