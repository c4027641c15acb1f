"""Fixtures for the member core, registered once in tests/conftest.py."""

from pathlib import Path

import pytest

from tests.crm.factories import MemberFactory


@pytest.fixture
def write_file(tmp_path):
    """write_file(name, text, encoding="utf-8") -> Path of a file with that text."""

    def write(name: str, text: str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


@pytest.fixture
def members_m1_m2(db):
    return [MemberFactory(external_id="M1"), MemberFactory(external_id="M2")]
