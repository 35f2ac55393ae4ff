"""Where a live Matroska/WebM byte stream (a browser recorder's) can be cut: its header, and the
starts of its clusters, read from the EBML element headers alone (nothing is demuxed).

A stream that ends mid-element ends the walk there: the bytes after the last cluster start found
may be a cluster still being uploaded. Clusters of unknown size (Chromium writes them so) end where
the next top-level element starts.
"""

from dataclasses import dataclass

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
# The Segment's children: an unknown-sized cluster ends where one of these starts.
TOP_LEVEL = {0x114D9B74, 0x1549A966, 0x1654AE6B, CLUSTER, 0x1C53BB6B, 0x1254C367, 0x1043A770,
             0x1941A469}


class NotMatroska(ValueError):
    pass


def _vint(data: bytes, pos: int, is_size: bool) -> tuple[int | None, int] | None:
    """(value, position after it) of the variable-length integer at pos; None: data ends first.
    A size with every value bit set is "unknown" (value None)."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first == 0:
        raise NotMatroska(f"no EBML element at byte {pos}")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos:pos + length], "big")
    if not is_size:
        return value, pos + length
    value &= (1 << 7 * length) - 1
    return (None if value == (1 << 7 * length) - 1 else value), pos + length


def _element(data: bytes, pos: int) -> tuple[int, int, int | None] | None:
    """(id, payload start, payload size or None if unknown) of the element at pos."""
    ident = _vint(data, pos, False)
    size = ident and _vint(data, ident[1], True)
    if not size:
        return None
    return ident[0], size[1], size[0]


def header_length(data: bytes) -> int | None:
    """Bytes before the first cluster (EBML header, Segment start, SeekHead, Info, Tracks); None
    until the first cluster's start has arrived."""
    head = _element(data, 0)
    if head is None:
        return None
    if head[0] != EBML_HEADER or head[2] is None:
        raise NotMatroska("the stream does not start with an EBML header")
    segment = _element(data, head[1] + head[2])
    if segment is None:
        return None
    if segment[0] != SEGMENT:
        raise NotMatroska("no Segment after the EBML header")
    starts = cluster_starts(data, segment[1])
    return starts.first if starts.first is not None else None


@dataclass
class Clusters:
    first: int | None  # the first cluster's start, if one was found
    last: int | None  # the last cluster start found (its cluster may go on past the data)


def cluster_starts(data: bytes, pos: int) -> Clusters:
    """The first and last cluster starts among the Segment's children from pos (an element start)."""
    found = Clusters(None, None)
    while (element := _element(data, pos)) is not None:
        ident, payload, size = element
        if ident == CLUSTER:
            found.first = pos if found.first is None else found.first
            found.last = pos
        if size is not None:
            pos = payload + size
            continue
        pos = payload  # unknown size: its children, to the next top-level element
        while (child := _element(data, pos)) is not None and child[0] not in TOP_LEVEL:
            if child[2] is None:
                raise NotMatroska(f"an element of unknown size inside a cluster at byte {pos}")
            pos = child[1] + child[2]
        if child is None:
            break
    return found
