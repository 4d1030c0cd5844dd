"""One exception hierarchy for the security layer; the API maps each class to one problem+json."""

from __future__ import annotations


class SecurityError(Exception):
    """Base of every refusal the security layer makes."""


class InvalidCredentials(SecurityError):
    """Unknown user, wrong password or disabled account: deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("invalid username or password")


class AccountLocked(SecurityError):
    """Too many failed logins; a correct password is refused until the lockout ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"account locked, retry after {retry_after} s")
        self.retry_after = retry_after


class InvalidToken(SecurityError):
    """An access or refresh token that is malformed, forged, expired, revoked or reused."""


class WeakPassword(SecurityError):
    """The password does not meet the password policy."""


class InvalidUser(SecurityError):
    """A username or unit binding that cannot be stored (bad characters, field unit without unit)."""


class UserExists(SecurityError):
    """The username is taken."""


class UnknownUser(SecurityError):
    """No user with that id (administrative operations, not logins)."""
