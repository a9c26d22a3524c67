"""Refusing what the machine cannot hold: the available memory and the one-line refusal."""

from __future__ import annotations

import pytest

from landscape import memory
from landscape.errors import UserError


def test_available_memory_is_a_positive_byte_count_on_this_machine():
    assert memory.available_bytes("cpu") > 0


@pytest.mark.parametrize(
    "count, text", [(512, "512 B"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB"), (5 << 40, "5.0 TiB")]
)
def test_sizes_are_written_in_binary_units(count, text):
    assert memory.format_bytes(count) == text


def test_a_request_beyond_the_available_memory_is_one_line_naming_both(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1 << 20)
    with pytest.raises(UserError, match=r"^the grid needs 2\.0 MiB, more than the 1\.0 MiB of "):
        memory.check_fits(2 << 20, "the grid")
    memory.check_fits(1 << 20, "the grid")  # exactly what there is: accepted
