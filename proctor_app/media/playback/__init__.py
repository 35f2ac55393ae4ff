"""Playback: stored media served with byte ranges (ranges.py) behind signed links (links.py)."""
