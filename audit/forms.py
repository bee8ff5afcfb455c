from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from audit.models import ActivityEvent
from audit.selectors import Filters

ACTION_SUGGESTIONS = (
    "alert",
    "alert.acknowledged",
    "alert.resolved",
    "audit",
    "dispatch",
    "failure",
    "notification",
    "sync",
    "sync.student_failed",
    "user",
    "user.login_failed",
)


# A time window is read as whole days on the school's clock; days outside these could not be
# turned into times at all (the calendar ends at 9999-12-31 in every time zone).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
_DAYS = [
    MinValueValidator(FIRST_DAY, f"must be on or after {FIRST_DAY:%Y-%m-%d}"),
    MaxValueValidator(LAST_DAY, f"must be on or before {LAST_DAY:%Y-%m-%d}"),
]
MAX_ID = 2**63 - 1


class FilterForm(forms.Form):
    """The filters of `/audit/` and `/audit/export.csv`, from the query string."""

    student = forms.CharField(required=False, max_length=100, help_text="Name or platform id")
    student_id = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, widget=forms.HiddenInput)
    class_id = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Class")
    actor = forms.CharField(required=False, max_length=150, help_text='Username, or "system"')
    action = forms.CharField(required=False, max_length=80, help_text="e.g. sync or alert.acknowledged")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *ActivityEvent.Status.choices])
    since = forms.DateField(required=False, validators=_DAYS, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, validators=_DAYS, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label="Text")

    def __init__(self, data: Any, *, classes: list[tuple[int, str]]) -> None:
        data = data.copy()
        if "class" in data:  # the public parameter name; `class` is a keyword in Python
            data["class_id"] = data.pop("class")[-1]
        super().__init__(data)
        self.fields["class_id"].choices = [("", "Any class"), *classes]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the time window is before its start.")
        return cleaned

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(
            student=data["student"].strip(),
            student_id=data["student_id"],
            class_id=data["class_id"],
            actor=data["actor"].strip(),
            action=data["action"].strip(),
            status=data["status"],
            since=data["since"],
            until=data["until"],
            q=data["q"].strip(),
        )
