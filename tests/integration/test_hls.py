"""The HLS ladder of real recordings: made by its own job after the MP4 (never before), one
rendition per height up to the source's (the top one copied when its keyframes are every 2 s),
playlists that parse with 2 s segments, each rendition decoding at its height; served through
links signed per viewer (playlists rewritten), not found for another organisation, and deleted
with the rest of the attempt's media."""

import io
from pathlib import Path

import av
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from proctor_app.api import build_api
from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.jobs.errors import Defer
from proctor_app.media.playback.links import key_recording_link, recording_link
from proctor_app.media.playback.playlists import parse_media_playlist, variant_uris
from proctor_app.media.processing.graphs import GOP_S
from proctor_app.media.storage import storage
from proctor_app.models import ApiKey, Job, RecordingStatus, utcnow
from proctor_app.services import processing
from proctor_app.services.retention import erase_media
from proctor_app.services.review import hls_link
from tests.support.factories import user_id
from tests.support.api import make_caller, wrap_attempt
from tests.support.finalized import recording_of
from tests.support.ladders import (finalize_here, finish_jobs, jobs_held_here,  # noqa: F401 (fixture)
                                   ladder_here, processed, recorded_attempt)
from tests.support.organisations import make_other_organisation

pytestmark = pytest.mark.usefixtures("demo_db", "jobs_held_here")

SECONDS = 8
SUPERVISOR_A = "supervisor@example.com"


def _jobs(attempt_id: int, kind: str) -> list[Job]:
    with session_scope() as db:
        return list(db.exec(select(Job).where(Job.attempt_id == attempt_id, Job.kind == kind).order_by(Job.id)))


def _rendition(folder: Path, playlist_name: str) -> tuple[list[float], av.VideoFrame | None, int, float]:
    """(segment durations, last frame, frames, last frame's time) of a rendition: its init and
    segments joined as the player's buffer gets them, then decoded."""
    playlist = parse_media_playlist((folder / playlist_name).read_text())
    data = (folder / playlist.init_uri).read_bytes() + b"".join((folder / uri).read_bytes()
                                                                 for _, uri in playlist.segments)
    frames, last, last_t = 0, None, 0.0
    with av.open(io.BytesIO(data), format="mp4") as container:
        for frame in container.decode(video=0):
            frames, last, last_t = frames + 1, frame, float(frame.pts * frame.time_base)
    return [d for d, _ in playlist.segments], last, frames, last_t


def _keyframe_times(folder: Path, playlist_name: str) -> list[float]:
    playlist = parse_media_playlist((folder / playlist_name).read_text())
    data = (folder / playlist.init_uri).read_bytes() + b"".join((folder / uri).read_bytes()
                                                                 for _, uri in playlist.segments)
    with av.open(io.BytesIO(data), format="mp4") as container:
        return [float(p.pts * p.time_base) for p in container.demux(video=0)
                if p.pts is not None and p.is_keyframe]


def test_a_ladder_up_to_each_sources_height_after_the_mp4(tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (640, 480), "screen": (1280, 720)}, SECONDS)
    with session_scope() as db:
        processing.enqueue_finalize(db, attempt_id)
    # Never before the MP4: with processing still to run, the ladder job waits.
    with pytest.raises(Defer):
        ladder_here(attempt_id)
    assert _jobs(attempt_id, processing.HLS) == []
    finalize_here(attempt_id)
    finish_jobs(attempt_id, processing.FINALIZE)
    assert len(_jobs(attempt_id, processing.HLS)) == 1
    camera = recording_of(attempt_id, "camera")
    assert camera.status == RecordingStatus.completed and camera.mp4_path and not camera.hls_path

    ladder_here(attempt_id)
    expected = {"camera": [(480, 360), (640, 480)], "screen": [(640, 360), (854, 480), (1280, 720)]}
    for stream, sizes in expected.items():
        rec = recording_of(attempt_id, stream)
        master = storage.absolute(rec.hls_path)
        folder = master.parent
        text = master.read_text()
        assert variant_uris(text) == [f"{h}p.m3u8" for _, h in sizes]
        for w, h in sizes:
            assert f"RESOLUTION={w}x{h}" in text
        assert text.count('CODECS="avc1.') == len(sizes) and "BANDWIDTH=" in text
        for (w, h), uri in zip(sizes, variant_uris(text)):
            durations, last, frames, last_t = _rendition(folder, uri)
            # 2 s segments (the last one may be shorter), decoding at the rendition's size to the end.
            assert all(abs(d - GOP_S) < 0.1 for d in durations[:-1]), durations
            assert abs(sum(durations) - SECONDS) < 0.5
            assert (last.width, last.height) == (w, h)
            assert frames >= SECONDS * 15 - 2 and last_t > SECONDS - 0.5
        # Every rendition has its keyframes at the same times, 2 s apart: a switch lands cleanly.
        keyframes = [_keyframe_times(folder, uri) for uri in variant_uris(text)]
        assert all(len(k) == len(keyframes[0]) >= SECONDS // GOP_S for k in keyframes), keyframes
        for times in zip(*keyframes):
            assert max(times) - min(times) < 0.02, keyframes
        assert all(abs(b - a - GOP_S) < 0.1 for a, b in zip(keyframes[0], keyframes[0][1:])), keyframes
    # The browser recording's keyframes were every 2 s: its top rendition is the MP4's video as is.
    with av.open(str(storage.absolute(recording_of(attempt_id, "camera").mp4_path))) as container:
        mp4_packets = [bytes(p) for p in container.demux(video=0) if p.size]
    folder = storage.absolute(recording_of(attempt_id, "camera").hls_path).parent
    top = parse_media_playlist((folder / "480p.m3u8").read_text())
    data = (folder / top.init_uri).read_bytes() + b"".join((folder / u).read_bytes() for _, u in top.segments)
    with av.open(io.BytesIO(data), format="mp4") as container:
        assert [bytes(p) for p in container.demux(video=0) if p.size] == mp4_packets
    # Nothing left to make: no more ladder jobs.
    with session_scope() as db:
        assert processing.enqueue_hls(db, attempt_id) is None


def test_no_upscaling_and_sparse_keyframes_are_encoded_on_top(tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS, keyframe_s=6.0)
    processed(attempt_id)
    rec = recording_of(attempt_id)
    folder = storage.absolute(rec.hls_path).parent
    # 240p: one rendition, its own height; its 6 s keyframes do not cut 2 s segments, so it is encoded.
    assert variant_uris(storage.absolute(rec.hls_path).read_text()) == ["240p.m3u8"]
    durations, last, _, _ = _rendition(folder, "240p.m3u8")
    assert (last.width, last.height) == (320, 240)
    assert all(abs(d - GOP_S) < 0.1 for d in durations[:-1]), durations


def test_reprocessing_makes_the_ladder_again(tmp_path, keep_raw_chunks):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS)
    with session_scope() as db:
        processing.enqueue_hls(db, attempt_id)  # nothing playable yet: nothing queued
    assert _jobs(attempt_id, processing.HLS) == []
    processed(attempt_id)
    master = storage.absolute(recording_of(attempt_id).hls_path)
    with session_scope() as db:
        processing.enqueue_finalize(db, attempt_id, force=True)
    with pytest.raises(Defer):  # the new MP4 first
        ladder_here(attempt_id)
    finalize_here(attempt_id, force=True)
    # The new MP4 queues its ladder again.
    assert len(_jobs(attempt_id, processing.HLS)) == 2
    finish_jobs(attempt_id, processing.FINALIZE)
    ladder_here(attempt_id)
    assert storage.absolute(recording_of(attempt_id).hls_path) == master and master.exists()
    # One ladder folder, no work folder left behind.
    assert sorted(p.name for p in master.parent.parent.iterdir() if "hls" in p.name) == ["camera_hls"]


@pytest.fixture(scope="module")
def api():
    with TestClient(build_api(), base_url="http://proctor.test") as client:
        yield client


def _cookie(email: str) -> dict:
    return {"Cookie": f"{SESSION_COOKIE}={sessions.login(email, DEMO_PASSWORD)[0]}"}


def test_served_through_links_signed_per_viewer(api, tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (640, 480)}, SECONDS)
    processed(attempt_id)
    me, cookie = user_id(SUPERVISOR_A), _cookie(SUPERVISOR_A)
    master = api.get(hls_link(me, attempt_id, "camera"), headers=cookie)
    assert master.status_code == 200, master.text
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    variants = variant_uris(master.text)
    assert len(variants) == 2 and all(v.startswith(f"/api/media/attempts/{attempt_id}/camera/hls/")
                                      and "sig=" in v for v in variants)
    media = api.get(variants[0], headers=cookie)
    assert media.status_code == 200
    playlist = parse_media_playlist(media.text)
    init = api.get(playlist.init_uri, headers=cookie)
    segment = api.get(playlist.segments[0][1], headers=cookie)
    assert init.status_code == 200 and segment.status_code == 200 and len(segment.content) > 1000
    # Byte ranges, as for the MP4.
    part = api.get(playlist.segments[0][1], headers=cookie | {"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    # A segment's link is the grant of this viewer only: another user's session gets 403.
    other = _cookie("admin@example.com")
    assert api.get(playlist.segments[0][1], headers=other).status_code == 403
    # Without a session, with a tampered signature, or an unknown file: refused.
    assert api.get(playlist.segments[0][1]).status_code == 401
    assert api.get(playlist.segments[0][1].replace("sig=", "sig=x"), headers=cookie).status_code == 403
    for name in ("secret.txt", "..%2Fcamera.mp4", "360p_1.m4s"):
        link = recording_link(me, attempt_id, "camera", f"hls/{name}")
        assert api.get(link, headers=cookie).status_code == 404, name
    assert api.get(recording_link(me, attempt_id, "microphone", "hls/master.m3u8"),
                   headers=cookie).status_code == 404
    # Paths only name the attempt and the file, never the storage layout.
    assert "processed/" not in master.text and "processed/" not in media.text


def test_a_recording_without_its_ladder_yet_is_not_found(api, tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS)
    finalize_here(attempt_id)
    response = api.get(hls_link(user_id(SUPERVISOR_A), attempt_id, "camera"), headers=_cookie(SUPERVISOR_A))
    assert response.status_code == 404 and "not available" in response.text


def test_another_organisations_user_gets_404(api, tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS)
    processed(attempt_id)
    org_b = make_other_organisation()
    for person in (org_b.supervisor, org_b.admin):
        response = api.get(hls_link(person.id, attempt_id, "camera"), headers=_cookie(person.email))
        assert response.status_code == 404 and response.text == "No such attempt."


def test_erasure_deletes_the_ladder(tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS)
    processed(attempt_id)
    rec = recording_of(attempt_id)
    folder = storage.absolute(rec.hls_path).parent
    assert len(list(folder.iterdir())) > 3
    with session_scope() as db:
        assert erase_media(db, attempt_id, utcnow(), "test erasure")
    assert not folder.exists()
    rec = recording_of(attempt_id)
    assert rec.status == RecordingStatus.expired and rec.hls_path == "" and rec.mp4_path == ""


def test_an_api_keys_link_gets_a_playlist_of_links_for_that_key(api, tmp_path):
    attempt_id = recorded_attempt(tmp_path, {"camera": (320, 240)}, SECONDS)
    processed(attempt_id)
    with session_scope() as db:
        caller = make_caller(db)
        wrap_attempt(db, caller.organisation_id, attempt_id)
        key_id = db.exec(select(ApiKey.id).where(ApiKey.organisation_id == caller.organisation_id)).one()
    master = api.get(key_recording_link(key_id, attempt_id, "camera", "hls/master.m3u8"))  # no cookie
    assert master.status_code == 200, master.text
    (variant,) = variant_uris(master.text)
    assert f"key={key_id}" in variant
    playlist = parse_media_playlist(api.get(variant).text)
    assert api.get(playlist.segments[-1][1]).status_code == 200
    # Another key's id in the link breaks the signature.
    assert api.get(playlist.segments[-1][1].replace("key=", "key=9")).status_code == 403
