"""Hostile-input suite: hostile HTTP requests and wire messages, each with its expected outcome.

Run as tests (``pytest tests/hostile``) or as a table (``python -m tests.hostile``).
"""
