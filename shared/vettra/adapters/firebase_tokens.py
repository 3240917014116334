"""Firebase custom tokens (firebase-admin): the dashboard's key to Firestore under the rules.

``auth.create_custom_token(uid, developer_claims)`` signs a JWT for the Identity Toolkit
audience (https://firebase.google.com/docs/auth/admin/create-custom-tokens); the browser
trades it with ``signInWithCustomToken`` for a Firebase ID token whose ``uid`` and
claims ``firestore.rules`` read (``request.auth.uid``, ``request.auth.token.vettra_role``,
``request.auth.token.tenant``).

Who signs:

- a service-account key (``credential_info``, the JSON key as a dict): signed here,
  offline — what tests use, with a key generated at test time;
- otherwise Application Default Credentials: on Cloud Functions firebase-admin signs
  through the IAM Credentials ``signBlob`` API as the function's own service account
  (``service_account_id``, or the one the metadata server names), which therefore needs
  ``iam.serviceAccounts.signBlob`` on itself (roles/iam.serviceAccountTokenCreator).

firebase-admin is imported on the first mint only (it costs ~1 s to import), and its
errors never leave this module: a signer that cannot be reached is :class:`Unavailable`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from typing import Any

from ..domain.errors import Unavailable
from ..ports import SignInTokens


class FirebaseCustomTokens(SignInTokens):
    def __init__(
        self,
        *,
        credential_info: Mapping[str, Any] | None = None,
        service_account_id: str | None = None,
        project: str | None = None,
    ):
        self._credential_info = dict(credential_info) if credential_info is not None else None
        self._options: dict[str, Any] = {}
        if service_account_id:
            self._options["serviceAccountId"] = service_account_id
        if project:
            self._options["projectId"] = project
        self._app: Any = None
        self._lock = threading.Lock()

    def _firebase_app(self) -> Any:
        """A firebase-admin app of our own (a unique name: never the global default app)."""
        with self._lock:
            if self._app is None:
                import firebase_admin
                from firebase_admin import credentials

                credential = (
                    credentials.Certificate(self._credential_info)
                    if self._credential_info is not None
                    else credentials.ApplicationDefault()
                )
                self._app = firebase_admin.initialize_app(
                    credential, self._options, name=f"vettra-{secrets.token_hex(4)}"
                )
            return self._app

    def mint(self, uid: str, claims: Mapping[str, Any]) -> str:
        from firebase_admin import auth, exceptions
        from google.auth import exceptions as google_auth_exceptions

        try:
            token = auth.create_custom_token(uid, dict(claims), app=self._firebase_app())
        except (exceptions.FirebaseError, google_auth_exceptions.GoogleAuthError) as exc:
            raise Unavailable(
                f"the Firebase token signer did not answer ({type(exc).__name__})"
            ) from None
        return token.decode("ascii") if isinstance(token, bytes) else str(token)

    def close(self) -> None:
        """Delete the firebase-admin app (tests; a function instance keeps it for life)."""
        with self._lock:
            if self._app is not None:
                import firebase_admin

                firebase_admin.delete_app(self._app)
                self._app = None
