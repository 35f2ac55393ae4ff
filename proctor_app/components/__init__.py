"""Reflex wrappers around the browser modules in assets/."""
