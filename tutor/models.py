from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """The last time a django-q2 worker ran the heartbeat task; /healthz reports its age."""

    cluster = models.CharField(max_length=100, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class ChatMessage(models.Model):
    """One turn of a teacher's conversation with the tutor about a student."""

    class Role(models.TextChoices):
        TEACHER = "teacher", "Teacher"
        TUTOR = "tutor", "Tutor"

    student = models.ForeignKey("classroom.Student", on_delete=models.CASCADE, related_name="chat_messages")
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=8, choices=Role.choices)
    text = models.TextField()
    source = models.CharField(max_length=8, blank=True, help_text="model or fallback, for the tutor's turns.")
    fallback_reason = models.CharField(max_length=300, blank=True)
    draft = models.ForeignKey(
        "plans.PlanDraft", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    llm_event_id = models.BigIntegerField(null=True, blank=True, help_text="The model call's audit event.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["student", "teacher", "created_at"], name="chat_student_teacher")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} on {self.student}: {self.text[:40]}"
