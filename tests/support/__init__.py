"""Shared test infrastructure: databases, live servers, GraphQL clients.

Fixtures live in ``tests/conftest.py``; the helpers here are plain modules so
tests (and benchmarks) can import them directly.
"""
