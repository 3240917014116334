"""The identity provider's published JSON over HTTPS (OIDC Discovery §4, RFC 7517 §5), via httpx.

One function, the seam :class:`vettra.services.oidc_stepup.IssuerKeys` calls: transport
errors and non-200 answers become :class:`Unavailable` (503) here, at the boundary.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..domain.errors import Unavailable

HTTP_TIMEOUT_S = 5.0  # the approver is waiting; a slow IdP answers 503


def fetch_json(url: str) -> Any:
    """GET ``url`` as JSON; any transport failure or non-200 answer is :class:`Unavailable`."""
    try:
        response = httpx.get(
            url,
            timeout=HTTP_TIMEOUT_S,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"the identity provider did not answer {url}: {type(exc).__name__}"
        ) from exc
    if response.status_code != 200:
        raise Unavailable(
            f"the identity provider answered {response.status_code} for {url}, expected 200"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise Unavailable(f"the identity provider's answer for {url} is not JSON") from exc
