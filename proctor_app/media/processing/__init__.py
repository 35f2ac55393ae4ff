"""Processing: a recording's raw chunks -> a verified MP4 (finalize.py, convert.py), its poster and
sprite (thumbnails.py), and a live preview while it is still being recorded (preview.py)."""
