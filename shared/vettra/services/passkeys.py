"""WebAuthn ceremonies (Level 3 §7.1 registration, §7.2 authentication) via py_webauthn.

The one module that calls the library: options out as JSON dicts, responses in as
dicts, and its exceptions translated here (``raise Mapped(...) from exc``). Imported
lazily by :mod:`vettra.services.stepup` so a cold start does not load pyOpenSSL.
"""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..domain.errors import FieldError, StepUpRequired, ValidationFailed, VerificationError
from ..domain.stepup import WEBAUTHN_TIMEOUT_MS, StepUpSettings

_MAX_DETAIL = 300


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _descriptors(credential_ids: Iterable[str]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=unb64(c)) for c in credential_ids]


@dataclass(frozen=True)
class Registered:
    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str


@dataclass(frozen=True)
class Asserted:
    sign_count: int
    user_verified: bool


def registration_options(
    settings: StepUpSettings, user_name: str, user_handle: bytes, existing: Iterable[str]
) -> tuple[str, dict[str, Any]]:
    """``(challenge, PublicKeyCredentialCreationOptionsJSON)``; UV and resident key preferred."""
    options = generate_registration_options(
        rp_id=settings.rp_id,
        rp_name=settings.rp_name,
        user_name=user_name,
        user_id=user_handle,
        timeout=WEBAUTHN_TIMEOUT_MS,
        exclude_credentials=_descriptors(existing),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return b64(options.challenge), json.loads(options_to_json(options))


def verify_registration(
    settings: StepUpSettings, credential: Mapping[str, Any], challenge: str
) -> Registered:
    """§7.1: challenge, origin, RP id, user presence and the attestation; 422 otherwise."""
    try:
        verified = verify_registration_response(
            credential=dict(credential),
            expected_challenge=unb64(challenge),
            expected_rp_id=settings.rp_id,
            expected_origin=list(settings.origins),
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            f"the attestation did not verify: {str(exc)[:_MAX_DETAIL]}"
        ) from exc
    return Registered(
        b64(verified.credential_id),
        b64(verified.credential_public_key),
        verified.sign_count,
        verified.aaguid,
    )


def assertion_options(
    settings: StepUpSettings, challenge: bytes, credential_ids: Iterable[str]
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON for the user's passkeys; UV preferred."""
    options = generate_authentication_options(
        rp_id=settings.rp_id,
        challenge=challenge,
        timeout=WEBAUTHN_TIMEOUT_MS,
        allow_credentials=_descriptors(credential_ids),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    as_json: dict[str, Any] = json.loads(
        options_to_json(options)
    )  # options_to_json emits an object
    return as_json


def parse_assertion(assertion: Mapping[str, Any]) -> tuple[str, AuthenticationCredential]:
    """``(credential_id, parsed)``; malformed JSON is bad input (422), not a failed step-up."""
    try:
        credential = parse_authentication_credential_json(dict(assertion))
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(
            "the WebAuthn assertion is not a PublicKeyCredential JSON",
            errors=[FieldError("webauthn", str(exc)[:_MAX_DETAIL])],
        ) from exc
    return b64(credential.raw_id), credential


def verify_assertion(
    settings: StepUpSettings,
    credential: AuthenticationCredential,
    challenge: bytes,
    public_key: str,
) -> Asserted:
    """§7.2 up to the signature; the counter rule is the caller's (``check_sign_count``)."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.rp_id,
            expected_origin=list(settings.origins),
            credential_public_key=unb64(public_key),
            # 0: the library's own counter check is skipped; the domain rule decides.
            credential_current_sign_count=0,
            require_user_verification=False,
        )
    except (WebAuthnException, ValueError) as exc:
        raise StepUpRequired(f"the assertion did not verify: {str(exc)[:_MAX_DETAIL]}") from exc
    return Asserted(verified.new_sign_count, verified.user_verified)
