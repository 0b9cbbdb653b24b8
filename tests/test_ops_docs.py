"""
What the README says of the session limit is what the databases do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from txsessions import Sessions
from txsessions.db import openDatabase
from txsessions.db.memory import MemoryDatabase

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_theSecurityDefaultsGiveTheMemoryDatabasesLimit() -> None:
    """
    The table said "no limit": the default database holds 100,000.
    """
    row = next(line for line in README.splitlines() if line.startswith("| Most "))
    default = row.split("|")[2]
    limit = Sessions().database._maxSessions  # type: ignore[attr-defined]
    assert limit == MemoryDatabase.DEFAULT_MAX_SESSIONS
    assert f"{limit:,} for `memory:`" in default
    assert "none for Redis" in default


def test_theLimitsSayRedisHasNone() -> None:
    """
    The README said every database takes C{maxSessions}: Redis refuses it.
    """
    with pytest.raises(ValueError, match="Redis database has no maxSessions"):
        openDatabase("redis://127.0.0.1:1/0", maxSessions=5)
    [limits] = [line for line in README.splitlines() if "**Limits**" in line]
    assert "every database takes `maxSessions`" not in limits
    assert "Redis has none" in " ".join(README.split())
