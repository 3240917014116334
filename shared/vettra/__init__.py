"""Vettra: the authorization layer for AI agents.

Nothing is imported or connected here: entry points call
:func:`vettra.bootstrap.bootstrap` when they first need the services.
"""

__version__ = "0.1.0"
