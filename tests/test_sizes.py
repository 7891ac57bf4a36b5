"""Sizes in words (``model.sizes``): what a storage, memory or limit message shows."""

from __future__ import annotations

import pytest

from plugbay.model.sizes import size_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (8077312, "7.7 MiB"),  # a full 8 MiB image: it said 7.70312 MiB
        (8 << 20, "8 MiB"),
        (1 << 30, "1024 MiB"),  # as limits are written: memory = "1024MiB"
        (512 << 10, "512 KiB"),
        (12345, "12.1 KiB"),
        (10, "10 bytes"),
        (None, "unlimited"),
    ],
)
def test_a_size_reads_with_one_decimal_at_most(value: int | None, text: str) -> None:
    assert size_text(value) == text
