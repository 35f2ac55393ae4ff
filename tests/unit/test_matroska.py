"""Cluster starts of a live Matroska stream from its element headers (media/processing/matroska.py):
known and unknown sizes (ffmpeg writes the first, Chromium the second), and streams cut anywhere."""

import pytest

from proctor_app.media.processing.matroska import NotMatroska, cluster_starts, header_length

UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def element(ident: bytes, payload: bytes, unknown: bool = False) -> bytes:
    return ident + (UNKNOWN if unknown else b"\x01" + len(payload).to_bytes(7, "big")) + payload


def stream(unknown: bool) -> tuple[bytes, list[int]]:
    """An EBML header, a Segment of unknown size with Info and Tracks, then three clusters of
    two SimpleBlocks each; and where each cluster starts."""
    head = element(b"\x1a\x45\xdf\xa3", b"\x42\x86\x81\x01") + b"\x18\x53\x80\x67" + UNKNOWN
    head += element(b"\x15\x49\xa9\x66", b"info") + element(b"\x16\x54\xae\x6b", b"tracks")
    data, starts = head, []
    for n in range(3):
        starts.append(len(data))
        blocks = element(b"\xe7", bytes([n])) + element(b"\xa3", b"frame" * 7) + element(b"\xa3", b"frame")
        data += element(b"\x1f\x43\xb6\x75", blocks, unknown)
    return data, starts


@pytest.mark.parametrize("unknown", [False, True])
def test_every_cluster_start_is_found_and_the_header_ends_at_the_first(unknown):
    data, starts = stream(unknown)
    assert header_length(data) == starts[0]
    found = cluster_starts(data, starts[0])
    assert (found.first, found.last) == (starts[0], starts[-1])


@pytest.mark.parametrize("unknown", [False, True])
def test_a_stream_cut_anywhere_gives_only_the_clusters_that_began(unknown):
    data, starts = stream(unknown)
    for cut in range(starts[0], len(data)):
        found = cluster_starts(data[:cut], starts[0])
        # A cluster counts once its id and size are in (12 bytes here).
        assert found.last == max((s for s in starts if s + 12 <= cut), default=None), cut


def test_a_header_still_arriving_is_not_yet_known():
    data, starts = stream(True)
    assert header_length(data[:starts[0] + 5]) is None
    assert header_length(data[:starts[0] + 12]) == starts[0]


def test_bytes_that_are_not_matroska_are_refused():
    with pytest.raises(NotMatroska):
        header_length(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(NotMatroska):
        header_length(element(b"\x1a\x45\xdf\xa3", b"") + element(b"\x15\x49\xa9\x66", b"x"))
