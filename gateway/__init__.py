"""Event Gateway core: app factory, plugin API, configuration, auth, quotas, errors, storage interface.

Plugin authors need only `hookimpl`, `gateway.vendor.VendorApi` and the helpers in `gateway.api`; they never
import pluggy.
"""

from .hookspecs import hookimpl

__all__ = ["create_app", "hookimpl"]
__version__ = "0.1.0"


def create_app(*args, **kwargs):
    """Build a Flask app; see `gateway.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
