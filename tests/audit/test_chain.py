"""Append-only and tamper-evident: what a compliance reviewer relies on during a review."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import chain
from audit.models import ActivityEvent, AppendOnlyError, ChainHead
from audit.services import new_event, record, record_events
from tests import factories

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the append-only trigger is PostgreSQL's (SQLite has ORM guards only)",
)


def _events(organisation, n=5):
    return [
        record(
            verb="test.happened", actor_name="system:test", organisation_id=organisation.pk, why=f"step {i}"
        )
        for i in range(n)
    ]


def _raw(sql, params=()):
    """Tampering as someone with database access would do it, behind the ORM's back."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _tamper(sql, params=()):
    # The trigger stops this on PostgreSQL; drop it to simulate an attacker who owns the table.
    if connection.vendor == "postgresql":
        _raw("ALTER TABLE audit_activityevent DISABLE TRIGGER audit_activityevent_append_only")
    _raw(sql, params)
    if connection.vendor == "postgresql":
        _raw("ALTER TABLE audit_activityevent ENABLE TRIGGER audit_activityevent_append_only")


def test_events_chain_per_organisation(school):
    mine = _events(school.organisation, 3)
    other = factories.OrganisationFactory()
    theirs = _events(other, 2)
    # Field history of the factories opened the chains too; ours continue them in order.
    seqs = [e.seq for e in mine]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert [e.seq for e in theirs][1] == theirs[0].seq + 1
    head = ChainHead.objects.get(organisation_id=school.organisation.pk)
    assert (head.seq, head.hash) == (mine[-1].seq, mine[-1].hash)
    assert chain.verify().broken is None


def test_a_batch_of_events_is_chained_in_the_order_given_across_organisations(school):
    other = factories.OrganisationFactory()
    before = _events(school.organisation, 1)[0]
    orgs = [school.organisation.pk, other.pk, school.organisation.pk, None, school.organisation.pk]
    batch = [
        new_event(verb="test.batched", actor_name="system:test", organisation_id=org, why=f"item {n}")
        for n, org in enumerate(orgs)
    ]
    stored = record_events(batch)
    mine = [e for e in stored if e.organisation_id == school.organisation.pk]
    assert [e.why for e in mine] == ["item 0", "item 2", "item 4"]
    assert [e.seq for e in mine] == [before.seq + 1, before.seq + 2, before.seq + 3]
    assert all(e.pk for e in stored) and [e.pk for e in mine] == sorted(e.pk for e in mine)
    assert ActivityEvent.objects.filter(verb="test.batched").count() == 5
    head = ChainHead.objects.get(organisation_id=school.organisation.pk)
    assert (head.seq, head.hash) == (mine[-1].seq, mine[-1].hash)
    assert chain.verify().broken is None
    _events(school.organisation, 1)  # one at a time again, after the batch
    assert chain.verify().broken is None


def test_a_batch_that_fails_leaves_no_event_and_the_chain_unmoved(school):
    head = ChainHead.objects.get(organisation_id=school.organisation.pk)
    batch = [new_event(verb="test.batched", actor_name="system:test", organisation_id=school.organisation.pk)]
    with pytest.raises(RuntimeError), transaction.atomic():
        record_events(batch)
        raise RuntimeError("the write the events describe failed")
    assert not ActivityEvent.objects.filter(verb="test.batched").exists()
    assert ChainHead.objects.get(organisation_id=school.organisation.pk).seq == head.seq
    assert chain.verify().broken is None


@pytest.mark.django_db(transaction=True)
def test_batches_and_single_events_written_at_once_keep_one_chain():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every write)")
    org = factories.OrganisationFactory()
    barrier, errors = threading.Barrier(3), []

    def writer(n):
        try:
            barrier.wait(timeout=10)
            for _ in range(10):
                if n == 0:
                    record(verb="test.single", actor_name="system:test", organisation_id=org.pk)
                else:
                    record_events(
                        [
                            new_event(verb="test.batched", actor_name="system:test", organisation_id=org.pk)
                            for _ in range(20)
                        ]
                    )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert ActivityEvent.objects.filter(organisation_id=org.pk, verb__startswith="test.").count() == 410
    assert chain.verify(org.pk).broken is None


def test_the_orm_and_the_admin_cannot_change_or_delete_events(school):
    event = _events(school.organisation, 1)[0]
    event.why = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        ActivityEvent.objects.filter(pk=event.pk).update(why="rewritten")
    with pytest.raises(AppendOnlyError):
        ActivityEvent.objects.filter(pk=event.pk).delete()
    assert ActivityEvent.objects.get(pk=event.pk).why == "step 0"


@postgres_only
@pytest.mark.postgres
def test_postgresql_rejects_raw_update_and_delete(school):
    event = _events(school.organisation, 1)[0]
    for sql in (
        "UPDATE audit_activityevent SET why = 'rewritten' WHERE id = %s",
        "DELETE FROM audit_activityevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            _raw(sql, [event.pk])
    assert ActivityEvent.objects.get(pk=event.pk).why == "step 0"


def test_verify_audit_passes_on_an_intact_log(school, capsys):
    _events(school.organisation, 4)
    call_command("verify_audit")
    assert "Audit log intact" in capsys.readouterr().out


def test_verify_audit_names_an_edited_event(school):
    events = _events(school.organisation, 4)
    _tamper("UPDATE audit_activityevent SET why = 'nothing to see' WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match=f"event {events[1].pk} .*edited"):
        call_command("verify_audit")


def test_verify_audit_names_an_event_whose_verb_was_changed(school):
    events = _events(school.organisation, 4)
    _tamper("UPDATE audit_activityevent SET status = 'succeeded', verb = 'x.y' WHERE id = %s", [events[2].pk])
    with pytest.raises(CommandError, match=f"event {events[2].pk} .*does not match its hash"):
        call_command("verify_audit")


def test_verify_audit_catches_a_deleted_event(school):
    events = _events(school.organisation, 4)
    _tamper("DELETE FROM audit_activityevent WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match=f"event {events[2].pk} .*seq {events[1].seq} is missing"):
        call_command("verify_audit")


def test_verify_audit_catches_the_newest_events_deleted(school):
    events = _events(school.organisation, 3)
    _tamper("DELETE FROM audit_activityevent WHERE id = %s", [events[-1].pk])
    with pytest.raises(CommandError, match="newest events were deleted"):
        call_command("verify_audit")


def test_verify_audit_catches_reordered_events(school):
    events = _events(school.organisation, 4)
    first, second = events[1], events[2]
    # Swap the times of two events, so the log reads as if they happened the other way round.
    _tamper("UPDATE audit_activityevent SET occurred_at = %s WHERE id = %s", [second.occurred_at, first.pk])
    _tamper("UPDATE audit_activityevent SET occurred_at = %s WHERE id = %s", [first.occurred_at, second.pk])
    with pytest.raises(CommandError, match=f"event {first.pk} "):
        call_command("verify_audit")


def test_a_failed_verification_is_itself_recorded(school):
    events = _events(school.organisation, 2)
    _tamper("UPDATE audit_activityevent SET why = 'x' WHERE id = %s", [events[0].pk])
    with pytest.raises(CommandError):
        call_command("verify_audit")
    finding = ActivityEvent.objects.get(verb="audit.verified")
    assert finding.status == "failed" and str(events[0].pk) in finding.why


def test_field_history_joins_the_timeline_with_the_request_correlation_id(client, school, settings):
    from tests.conftest import login

    settings.AUDIT_TRUST_CORRELATION_HEADER = True

    admin = factories.UserFactory(organisation=school.organisation, is_staff=True, is_superuser=True)
    login(client, admin)
    response = client.post(
        f"/admin/classroom/schoolclass/{school.school_class.pk}/change/",
        {
            "organisation": school.organisation.pk,
            "name": "Biology, set 2",
            "subject": "Biology",
            "platform_id": school.school_class.platform_id,
            "is_active": "on",
            "teacher_assignments-TOTAL_FORMS": "0",
            "teacher_assignments-INITIAL_FORMS": "0",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
        HTTP_X_CORRELATION_ID="corr-field-history-1",
    )
    assert response.status_code == 302
    events = ActivityEvent.objects.filter(correlation_id="corr-field-history-1")
    assert {"schoolclass.changed", "schoolclass.updated"} <= set(events.values_list("verb", flat=True))
    diff = events.get(verb="schoolclass.updated")
    assert diff.details["changes"]["name"][1] == "Biology, set 2"
    assert diff.class_id == school.school_class.pk and diff.actor_id == admin.pk and diff.source == "admin"
