"""Every password the tests send, so the run-wide log check (tests/conftest.py,
no_secret_in_any_server_log) can look for each one: a password is never logged."""

from __future__ import annotations

ACCOUNT = "correct horse battery"
MATRIX = "matrix password 1"
BAD_INPUT = "a fine password"
UPGRADE = "upgrade password 1"
WRONG = ("not the password", "still wrong", "wrong password")

ALL = (ACCOUNT, MATRIX, BAD_INPUT, UPGRADE, *WRONG)
