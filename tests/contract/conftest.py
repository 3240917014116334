"""Fixtures shared by the contract modules: registered once here so that a session-scoped
emulator is started once per session, not once per module that imports it."""

from .firestore_emulator import firestore_emulator, firestore_project  # noqa: F401
from .pubsub_emulator import pubsub_emulator, pubsub_project  # noqa: F401
