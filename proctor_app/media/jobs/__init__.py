"""Durable background jobs: the `jobs` table is the queue (queue.py), every process that works runs
a Worker (worker.py) with the handlers the composition root gives it."""
