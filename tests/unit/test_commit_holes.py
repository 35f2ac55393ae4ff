"""The hole count a chunk's commit adds to its recording: seqs below the highest stored one that
have not arrived (yet)."""

from hypothesis import given
from hypothesis import strategies as st

from proctor_app.media.ingest.commit import holes_added


def test_in_order_chunks_add_no_hole():
    assert holes_added(count_before=0, highest_before=-1, seq=0) == 0
    assert holes_added(count_before=5, highest_before=4, seq=5) == 0


def test_skipping_ahead_adds_the_seqs_skipped():
    assert holes_added(count_before=1, highest_before=0, seq=4) == 3


def test_a_late_chunk_fills_one_hole():
    # 0, 1 and 4 stored: 2 and 3 are holes; 3 arrives.
    assert holes_added(count_before=3, highest_before=4, seq=3) == -1


@given(st.permutations(range(12)), st.integers(min_value=1, max_value=12))
def test_the_running_sum_is_the_holes_of_what_arrived(order, arrived):
    holes, stored = 0, []
    for seq in order[:arrived]:
        holes += holes_added(len(stored), max(stored, default=-1), seq)
        stored.append(seq)
        assert holes == max(stored) + 1 - len(stored)
