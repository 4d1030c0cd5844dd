"""One exception hierarchy for DC-09, shaped by the reply each failure earns.

A `FrameError` means the bytes did not arrive intact (or are not a DC-09 frame at all): the receiver
stays silent and the panel retries. Every other `Dc09Error` concerns a frame that arrived intact but
cannot be processed, which DC-09 answers with DUH, or, for the clock, NAK.
"""

from __future__ import annotations


class Dc09Error(Exception):
    """Base of every DC-09 codec error."""


class FrameError(Dc09Error):
    """Not an intact frame: bad framing, length or CRC, or a header that cannot be read."""


class CrcError(FrameError):
    """The CRC does not match the frame's content."""


class LengthError(FrameError):
    """The length field does not match the frame's content."""


class DecryptionError(Dc09Error):
    """Encrypted content that will not decrypt with the account's key, or no key to try."""


class ContentError(Dc09Error):
    """An intact frame whose data or extended blocks cannot be read."""


class TimestampError(Dc09Error):
    """A timestamp missing where required, unreadable, or outside the accepted window."""
