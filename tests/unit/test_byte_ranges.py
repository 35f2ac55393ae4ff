"""Parsing a Range header for recorded media (no server): what it selects is what slicing selects."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proctor_app.media.playback.ranges import ByteRange, RangeNotSatisfiable, parse_range


@given(size=st.integers(1, 10_000), first=st.integers(0, 20_000), span=st.integers(0, 20_000))
def test_parse_range_matches_slicing(size, first, span):
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    header = f"bytes={first}-{first + span}"
    if first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
        return
    wanted = parse_range(header, size)
    assert data[wanted.start:wanted.end + 1] == data[first:first + span + 1]
    suffix = parse_range(f"bytes=-{span + 1}", size)
    assert data[suffix.start:suffix.end + 1] == data[-(span + 1):]


def test_parse_range_edges():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == ByteRange(0, 0)
    assert parse_range("BYTES=9-", 10) == ByteRange(9, 9)
    assert parse_range("items=0-1", 10) is None
    for header in ("bytes=-0", "bytes=10-", "bytes=٣-5", "bytes=+1-2", "bytes=1-2-3", "bytes 0-1"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)
