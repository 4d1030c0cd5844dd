"""DC-09 content encryption: AES-CBC with a zero IV, hex on the wire, random pad in front.

With a fixed IV, identical messages would give identical ciphertext; DC-09 makes the first block
unpredictable instead by prefixing random pad characters, then ``|``, to the plaintext
``<pad>|<data>]<extended blocks>_<timestamp>``. The pad never contains ``|``, ``[`` or ``]`` so a
receiver can strip it. Randomness is passed in, as everywhere in the codec, so tests are repeatable.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from safecity.receivers.dc09_errors import DecryptionError

KEY_SIZES = (16, 24, 32)
_BLOCK = 16
_ZERO_IV = bytes(_BLOCK)
_PAD_ALPHABET = (string.ascii_letters + string.digits).encode("ascii")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

RandomBytes = Callable[[int], bytes]


def _check_key(key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise DecryptionError(f"AES key must be 16, 24 or 32 bytes, not {len(key)}")


def pad_length(content_length: int) -> int:
    """Pad characters needed so that ``pad + '|' + content`` fills whole blocks (1 to 16 of them)."""
    return _BLOCK - (content_length + 1) % _BLOCK or _BLOCK


def make_pad(length: int, random_bytes: RandomBytes = os.urandom) -> bytes:
    return bytes(_PAD_ALPHABET[b % len(_PAD_ALPHABET)] for b in random_bytes(length))


def encrypt_content(content: str, key: bytes, random_bytes: RandomBytes = os.urandom) -> str:
    """Encrypt ``<data>]…_<timestamp>`` (everything after the frame's ``[``) into upper-case hex."""
    _check_key(key)
    body = content.encode("ascii")
    plaintext = make_pad(pad_length(len(body)), random_bytes) + b"|" + body
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return (encryptor.update(plaintext) + encryptor.finalize()).hex().upper()


def decrypt_content(ciphertext: str, key: bytes) -> str:
    """Decrypt hex content and strip the pad; returns ``<data>]…_<timestamp>``.

    Some senders leave out the ``|`` when there is no data (pysiaalarm's encrypted ACK and NULL pad
    straight up to ``]``), so without a ``|`` before the first ``]`` all of it is taken as pad. The
    remainder must be printable ASCII: with a wrong key it is random bytes, and this is what tells the
    two apart (a CBC decryption with the wrong key does not fail by itself).
    """
    _check_key(key)
    if not ciphertext or len(ciphertext) % (2 * _BLOCK) or not _HEX_DIGITS.issuperset(ciphertext):
        raise DecryptionError("encrypted content is not whole AES blocks of hex")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    plaintext = decryptor.update(bytes.fromhex(ciphertext)) + decryptor.finalize()
    close = plaintext.find(b"]")
    if close < 0:
        raise DecryptionError("decrypted content has no data block: wrong key?")
    bar = plaintext.find(b"|", 0, close)
    content = plaintext[bar + 1 if bar >= 0 else close :]
    if not all(0x20 <= b < 0x7F for b in content):
        raise DecryptionError("decrypted content is not text: wrong key?")
    return content.decode("ascii")
