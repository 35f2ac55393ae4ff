"""Processing: a recording's raw chunks -> a verified MP4 (finalize.py, convert.py), its poster and\nsprite, and a live preview while it is still being recorded."""
