"""Proctor alerts in Chromium against the running app: a publishing candidate whose page goes
away, or a critical event, toasts on the proctor's grid within 5 s; the alert stays listed
until the proctor acknowledges it (audited); the optional beep. (The rules without a browser:
tests/integration/test_proctor_alerts.py.)"""

import time

import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import AuditLog, ProctorAlert, User
from tests.support.live_exams import make_live_exam
from tests.support.live_pages import open_grid, start_publishing, status_of

pytestmark = pytest.mark.browser

ALERT_WITHIN_S = 5.0


def _candidate_name(email: str) -> str:
    with session_scope() as db:
        return db.exec(select(User.name).where(User.email == email)).one()


def _open_alert_ids(email: str, attempt_id: int) -> list[int]:
    with session_scope() as db:
        user_id = db.exec(select(User.id).where(User.email == email)).one()
        return list(db.exec(select(ProctorAlert.id).where(
            ProctorAlert.user_id == user_id, ProctorAlert.attempt_id == attempt_id,
            ProctorAlert.acknowledged_at.is_(None)).order_by(ProctorAlert.id)))


def _toast(page, text: str):
    return page.locator("[data-sonner-toast]", has_text=text).first


def test_a_candidate_going_away_alerts_the_proctor_until_acknowledged(new_context):
    live = make_live_exam()
    proctor_email = live.proctors[0]
    name = _candidate_name(live.candidate)
    candidate_ctx, _ = start_publishing(new_context, live)
    proctor = open_grid(new_context, proctor_email)
    expect(status_of(proctor, live.attempt_id)).to_have_attribute("data-status", "live")
    expect(proctor.locator("#alert-count")).to_have_text("0")

    cut_at = time.monotonic()
    candidate_ctx.close()  # the candidate's page and its connection are gone
    expect(_toast(proctor, name)).to_be_visible(timeout=ALERT_WITHIN_S * 1000)
    assert time.monotonic() - cut_at < ALERT_WITHIN_S
    expect(_toast(proctor, name)).to_contain_text("live video")
    first_id = _open_alert_ids(proctor_email, live.attempt_id)[0]
    alert = proctor.locator(f"#ack-{first_id}")
    expect(alert).to_be_visible()

    # The alert is kept on the server: it is still listed after the page is opened again.
    proctor.reload()
    expect(alert).to_be_visible()
    expect(proctor.locator(".alert-line", has_text=name).first).to_be_visible()

    alert.click()
    expect(alert).to_have_count(0)
    assert first_id not in _open_alert_ids(proctor_email, live.attempt_id)
    with session_scope() as db:
        audit, = db.exec(select(AuditLog).where(AuditLog.action == "proctor_alert_acknowledged",
                                                AuditLog.target == f"attempt:{live.attempt_id}")).all()
        assert audit.data["alert_id"] == first_id
    # The other proctor of the exam, who was not watching, was not alerted.
    assert _open_alert_ids(live.proctors[1], live.attempt_id) == []


def test_a_critical_event_toasts_and_beeps_when_the_proctor_turned_sound_on(new_context, app_server):
    live = make_live_exam()
    name = _candidate_name(live.candidate)
    proctor = open_grid(new_context, live.proctors[0])
    expect(proctor.locator(f"#tile-{live.attempt_id}")).to_be_visible()
    sound = proctor.locator("#alert-sound")
    expect(sound).to_have_attribute("data-state", "unchecked")  # off by default
    sound.click()
    expect(sound).to_have_attribute("data-state", "checked")
    # Remembered by this browser.
    proctor.reload()
    expect(sound).to_have_attribute("data-state", "checked")
    expect(proctor.locator(f"#tile-{live.attempt_id}")).to_be_visible()

    sent_at = time.monotonic()
    answer = httpx.post(f"{app_server.url}/api/attempts/{live.attempt_id}/events", timeout=30,
                        headers={"Authorization": f"Bearer {live.token}"},
                        json={"events": [{"id": "camera-lost-1", "kind": "camera_lost",
                                          "data": {"stream": "camera", "label": "Fake camera"}}]})
    assert answer.status_code == 200, answer.text
    expect(_toast(proctor, f"{name}: Camera lost")).to_be_visible(timeout=ALERT_WITHIN_S * 1000)
    assert time.monotonic() - sent_at < ALERT_WITHIN_S
    proctor.wait_for_function("window.proctorBeeps >= 1")
    expect(proctor.locator("#alert-count")).to_have_text("1")
    expect(proctor.locator("#alerts")).to_contain_text(f"{name}: Camera lost")
    # The tile's event line reads as a sentence too.
    expect(proctor.locator(f"#tile-{live.attempt_id}")).to_contain_text("Camera lost")
