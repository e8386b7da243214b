"""Fixtures for end-to-end tests: real consumers, running in threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import running

from rtindex.consumers.behaviors import BehaviorConsumer
from rtindex.consumers.documents import DocumentConsumer
from rtindex.settings import Settings


@pytest.fixture
def consumer(topics: Settings) -> Iterator[DocumentConsumer]:
    """The document consumer, running in a thread until the test ends."""
    with running(DocumentConsumer(topics)) as c:
        yield c


@pytest.fixture
def behavior_consumer(topics: Settings) -> Iterator[BehaviorConsumer]:
    """The behavior consumer, running in a thread until the test ends."""
    with running(BehaviorConsumer(topics)) as c:
        yield c
