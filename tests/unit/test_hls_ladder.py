"""The HLS ladder's plan (heights up to the source's, never upscaled) and its playlists as text:
parsed, written, and every URI rewritten."""

import pytest

from proctor_app.media.playback.playlists import (
    PlaylistError,
    Variant,
    master_playlist,
    parse_media_playlist,
    rewrite_uris,
    variant_uris,
)
from proctor_app.media.processing.hls import plan_ladder
from proctor_app.media.storage.layout import HLS_FILE_NAME

MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="480p_init.mp4"
#EXTINF:2.000000,
480p_00000.m4s
#EXTINF:1.500000,
480p_00001.m4s
#EXT-X-ENDLIST
"""


def _heights(width, height, copy_top=True):
    return [(r.width, r.height, r.copy) for r in plan_ladder(width, height, copy_top)]


def test_a_screen_gets_360_480_720_with_the_top_copied():
    assert _heights(1280, 720) == [(640, 360, False), (854, 480, False), (1280, 720, True)]


def test_a_480p_camera_is_not_upscaled():
    assert _heights(640, 480) == [(480, 360, False), (640, 480, True)]
    assert _heights(320, 240, copy_top=False) == [(320, 240, False)]


def test_an_odd_height_tops_the_ladder_at_its_own_size():
    assert _heights(1366, 768) == [(640, 360, False), (854, 480, False), (1280, 720, False), (1366, 768, True)]


def test_a_media_playlist_parses():
    playlist = parse_media_playlist(MEDIA)
    assert playlist.init_uri == "480p_init.mp4" and playlist.target_duration_s == 2
    assert playlist.segments == [(2.0, "480p_00000.m4s"), (1.5, "480p_00001.m4s")]
    assert playlist.duration_s == 3.5


@pytest.mark.parametrize("text", ["", "not a playlist", MEDIA.replace("#EXT-X-ENDLIST\n", ""),
                                  MEDIA.replace('#EXT-X-MAP:URI="480p_init.mp4"\n', ""),
                                  MEDIA.replace("#EXTINF:1.500000,", "#EXTINF:9.0,")])
def test_broken_playlists_are_refused(text):
    with pytest.raises(PlaylistError):
        parse_media_playlist(text)


def test_master_lists_variants_lowest_first_with_their_attributes():
    text = master_playlist([Variant("480p.m3u8", 900_000, 800_000, 640, 480, "avc1.42c01e,opus", 15),
                            Variant("360p.m3u8", 500_000, 400_000, 480, 360, "avc1.640015,opus", 15)])
    assert variant_uris(text) == ["360p.m3u8", "480p.m3u8"]
    assert ('#EXT-X-STREAM-INF:BANDWIDTH=500000,AVERAGE-BANDWIDTH=400000,RESOLUTION=480x360,'
            'FRAME-RATE=15.000,CODECS="avc1.640015,opus"') in text


def test_every_uri_is_rewritten():
    rewritten = rewrite_uris(MEDIA, lambda uri: f"/signed/{uri}?sig=a&exp=1")
    playlist = parse_media_playlist(rewritten)
    assert playlist.init_uri == "/signed/480p_init.mp4?sig=a&exp=1"
    assert [uri for _, uri in playlist.segments] == ["/signed/480p_00000.m4s?sig=a&exp=1",
                                                     "/signed/480p_00001.m4s?sig=a&exp=1"]


@pytest.mark.parametrize("name,ok", [("master.m3u8", True), ("720p.m3u8", True), ("480p_init.mp4", True),
                                     ("480p_00012.m4s", True), ("480p_1.m4s", False), ("../x.m3u8", False),
                                     ("camera.mp4", False), ("480p.m3u8.bak", False)])
def test_only_ladder_files_are_named(name, ok):
    assert bool(HLS_FILE_NAME.fullmatch(name)) is ok
