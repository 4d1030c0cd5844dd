"""Imports every module that defines tables, so Alembic and tests see the whole schema."""

from safecity.alarms import model as alarms_model  # noqa: F401
from safecity.dispatch import model as dispatch_model  # noqa: F401
from safecity.security import model as security_model  # noqa: F401
