"""Retention: the media of attempts whose retention period is over is deleted (plan.py, run.py);
usage.py tells what storage holds."""
