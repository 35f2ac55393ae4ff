"""Declared recording types -> the ffmpeg demuxer that reads them (never a guess)."""

import pytest

from proctor_app.media.processing.formats import PROTOCOLS, UnknownFormat, demuxer_for, pinned_input_options


@pytest.mark.parametrize("mime, demuxer", [
    ("video/x-matroska;codecs=avc1,opus", "matroska"),
    ("video/webm;codecs=vp8,opus", "matroska"),
    ("video/webm;codecs=vp9", "matroska"),
    ("VIDEO/WEBM", "matroska"),
    ("audio/webm;codecs=opus", "matroska"),
    ("video/mp4", "mov"),
    ("video/mp4;codecs=avc1.42E01E,mp4a.40.2", "mov"),
])
def test_declared_containers_map_to_their_demuxer(mime, demuxer):
    assert demuxer_for(mime) == demuxer
    assert pinned_input_options(mime) == {"f": demuxer, "protocol_whitelist": PROTOCOLS}


@pytest.mark.parametrize("mime", ["", "video/x-flv", "application/x-mpegurl", "video/ogg",
                                  "application/vnd.apple.mpegurl", "text/plain", "video/webmx"])
def test_other_types_have_no_demuxer(mime):
    with pytest.raises(UnknownFormat):
        demuxer_for(mime)
