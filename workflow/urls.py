"""The six surfaces of the Teacher Activation Workflow, one URL each under the class, and the POSTs
that act on them."""

from __future__ import annotations

from django.urls import path

from workflow import views
from workflow.catalog import Surface

app_name = "workflow"

CLASS = "classes/<int:class_id>/workflow/"

urlpatterns = [
    path(CLASS, views.resume, name="resume"),
    path(f"{CLASS}step/", views.step_move, name="step"),
    path(
        f"{CLASS}recommendations/",
        views.surface_page,
        {"surface": Surface.RECOMMENDATIONS},
        name="recommendations",
    ),
    path(f"{CLASS}recommendations/refresh/", views.recommendations_refresh, name="refresh"),
    path(f"{CLASS}alerts/<int:alert_id>/review/", views.alert_review, name="alert_review"),
    path(
        f"{CLASS}smart-grouping/",
        views.surface_page,
        {"surface": Surface.SMART_GROUPING},
        name="smart_grouping",
    ),
    path(f"{CLASS}smart-grouping/membership/", views.membership, name="membership"),
    path(
        f"{CLASS}scaffold-preview/",
        views.surface_page,
        {"surface": Surface.SCAFFOLD_PREVIEW},
        name="scaffold_preview",
    ),
    path(
        f"{CLASS}activation-review/",
        views.surface_page,
        {"surface": Surface.ACTIVATION_REVIEW},
        name="activation_review",
    ),
    path(f"{CLASS}activation-review/save/", views.activation_review_save, name="activation_review_save"),
    path(
        f"{CLASS}activation-confirmation/",
        views.surface_page,
        {"surface": Surface.ACTIVATION_CONFIRMATION},
        name="activation_confirmation",
    ),
    path(f"{CLASS}activation-confirmation/activate/", views.activation_confirm, name="activate"),
    path(f"{CLASS}plan-review/", views.surface_page, {"surface": Surface.PLAN_REVIEW}, name="plan_review"),
    path(f"{CLASS}plan-review/<int:assignment_id>/continue/", views.plan_continue, name="plan_continue"),
    path(f"{CLASS}plan-review/<int:assignment_id>/exit/", views.plan_exit, name="plan_exit"),
]
