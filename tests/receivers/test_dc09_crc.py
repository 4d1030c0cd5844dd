"""The compiled CRC agrees with the plain-Python reference on anything."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from safecity.receivers.dc09_frame import crc16, crc16_reference


def test_known_check_value() -> None:
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    assert crc16_reference(b"123456789") == 0xBB3D


@given(st.binary(max_size=600))
def test_compiled_crc_equals_the_reference(data: bytes) -> None:
    assert crc16(data) == crc16_reference(data)
