"""Security: users and roles, password hashing, tokens, the hash-chained audit log.

Every route declares the roles it needs (`roles.OPERATIONS`, …) and every sensitive read and every
change goes through `AuditLog.append`.
"""

from safecity.security.audit import (
    AuditLog,
    AuditRecord,
    ChainPoint,
    Problem,
    VerifyReport,
    record_hash,
    verify_records,
)
from safecity.security.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidToken,
    InvalidUser,
    SecurityError,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from safecity.security.passwords import PasswordHasher, check_password_policy
from safecity.security.roles import (
    ADMINISTRATION,
    ALL_ROLES,
    FIELD,
    OPERATIONS,
    OVERSIGHT,
    SUPERVISION,
    Role,
)
from safecity.security.service import Principal, SecurityService, UserInfo, normalize_username
from safecity.security.tokens import AccessClaims, TokenPair, decode_access_token, issue_access_token

__all__ = [
    "ADMINISTRATION",
    "ALL_ROLES",
    "FIELD",
    "OPERATIONS",
    "OVERSIGHT",
    "SUPERVISION",
    "AccessClaims",
    "AccountLocked",
    "AuditLog",
    "AuditRecord",
    "ChainPoint",
    "InvalidCredentials",
    "InvalidToken",
    "InvalidUser",
    "PasswordHasher",
    "Principal",
    "Problem",
    "Role",
    "SecurityError",
    "SecurityService",
    "TokenPair",
    "UnknownUser",
    "UserExists",
    "UserInfo",
    "VerifyReport",
    "WeakPassword",
    "check_password_policy",
    "decode_access_token",
    "issue_access_token",
    "normalize_username",
    "record_hash",
    "verify_records",
]
