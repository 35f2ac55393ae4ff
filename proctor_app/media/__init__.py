"""Media handling in plain Python (no Reflex): storage, ingest, processing, relay, retention."""
