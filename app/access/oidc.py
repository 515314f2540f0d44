"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, as a client of
one identity provider, and the mapping of one claim of its ID tokens (groups, by default) onto a
tenant and a role.

Framework-agnostic: ``begin`` gives the URL to send a person to and an ``OidcPending`` that the
caller keeps (the console: in a signed, short-lived cookie) until the provider sends the person
back with a code; ``finish`` exchanges the code and answers an ``OidcIdentity`` or raises
``OidcRefused``, whose message is safe to show that person. HTTP goes through aiohttp; PKCE
through Authlib; JWK sets, signatures and claims through joserfc (Authlib's own JOSE library,
which Authlib 1.7+ uses and recommends over its deprecated ``authlib.jose``). What it is
configured with, checked when the process starts, is app/access/oidc_settings.py's.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
import orjson
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingAlgorithmError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from flowlog.access.oidc_settings import ROLES, MappingEntry, OidcSettings, check_url

log = logging.getLogger(__name__)

# Asymmetric only: an HS256 token would be signed with the client secret, which this service
# holds too, so it could not tell the provider's tokens from ones forged with its own secret.
ALGORITHMS: Final = ("RS256", "ES256")
LEEWAY: Final = 60  # seconds of clock skew allowed between this host and the provider
PENDING_MAX_AGE: Final = 600  # seconds a person has to sign in at the provider
MAX_RESPONSE: Final = 1 << 20  # bytes of a provider's answer read at most
MAX_CODE: Final = 4096

_UNREACHABLE = "The identity provider could not be reached. Try again later."
_START_AGAIN = "This sign-in does not match the one this service started. Start again."
_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class OidcRefused(Exception):
    """A sign-in refused; ``reason`` (the message) names why in words fit for the person
    signing in: no token contents, no provider answers, no stack."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OidcPending:
    """A sign-in begun and not yet finished: what ``finish`` checks the provider's answer
    against. ``as_dict``/``from_dict`` carry it through a cookie (which must be signed)."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    created: int

    def as_dict(self) -> dict[str, str | int]:
        return {
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> OidcPending:
        """Refuses (OidcRefused) anything but the five fields with their types."""
        if not isinstance(data, Mapping) or set(data) != {
            "state", "nonce", "code_verifier", "redirect_uri", "created"
        }:  # fmt: skip
            raise OidcRefused(_START_AGAIN)
        texts = [data[name] for name in ("state", "nonce", "code_verifier", "redirect_uri")]
        created = data["created"]
        if not all(isinstance(text, str) and text for text in texts) or not (
            isinstance(created, int) and not isinstance(created, bool)
        ):
            raise OidcRefused(_START_AGAIN)
        state, nonce, verifier, redirect_uri = (str(text) for text in texts)
        return cls(state, nonce, verifier, redirect_uri, created)


@dataclass(frozen=True)
class OidcIdentity:
    """Who signed in: the provider's subject, a name to show, and the tenant and role that the
    mapping gave them (role: one of ROLES)."""

    subject: str
    name: str
    email: str | None
    tenant: str
    role: str


@dataclass(frozen=True)
class OidcProvider:
    """What discovery said about the provider, as far as this client uses it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_method: str


class OidcClient:
    """The client of one provider. Discovery and its keys are fetched once and kept; the keys
    are fetched again when a token names a key they do not hold (the provider rotated them).

    ``session``: an aiohttp session to share (its owner closes it); without one, each call
    opens and closes its own."""

    def __init__(self, settings: OidcSettings, session: aiohttp.ClientSession | None = None):
        self.settings = settings
        self._session = session
        self._provider: OidcProvider | None = None
        self._keys: KeySet | None = None

    # -- discovery ---------------------------------------------------------------------------

    async def discover(self) -> OidcProvider:
        """The provider's metadata (fetched once); refuses when it cannot be read or names
        another issuer than the configured one, character for character."""
        if self._provider is not None:
            return self._provider
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, document = await self._request("GET", url)
        if status != 200 or document is None:
            log.warning("OIDC discovery failed", extra={"url": url, "status": status})
            raise OidcRefused(
                f"The identity provider's discovery document could not be read (HTTP {status})."
            )
        if document.get("issuer") != issuer:
            log.warning(
                "OIDC discovery names another issuer",
                extra={"configured": issuer, "discovered": str(document.get("issuer"))[:200]},
            )
            raise OidcRefused(
                "The identity provider names another issuer than the configured one "
                "(the issuer must match exactly, a trailing slash included)."
            )
        provider = self._provider_of(document)
        self._keys = await self._fetch_keys(provider.jwks_uri)
        self._provider = provider
        return provider

    def _provider_of(self, document: Mapping[str, Any]) -> OidcProvider:
        allow_http = urlsplit(self.settings.issuer).scheme == "http"
        urls: list[str] = []
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            try:
                if not isinstance(value, str):
                    raise ValueError(name)
                check_url(value, name, allow_http=allow_http)
            except ValueError:
                log.warning("OIDC discovery lacks a usable URL", extra={"field": name})
                raise OidcRefused(
                    f"The identity provider's discovery document has no usable {name}."
                ) from None
            urls.append(value)
        offered = document.get("id_token_signing_alg_values_supported", ["RS256"])
        algorithms = tuple(a for a in ALGORITHMS if isinstance(offered, list) and a in offered)
        methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        method = next((m for m in _AUTH_METHODS if isinstance(methods, list) and m in methods), "")
        if not algorithms:
            raise OidcRefused(
                "The identity provider signs ID tokens with none of the algorithms this service "
                f"accepts ({', '.join(ALGORITHMS)})."
            )
        if not method:
            raise OidcRefused(
                "The identity provider offers no client authentication this service uses "
                f"({', '.join(_AUTH_METHODS)})."
            )
        authorize, token, jwks = urls
        return OidcProvider(self.settings.issuer, authorize, token, jwks, algorithms, method)

    async def _fetch_keys(self, jwks_uri: str) -> KeySet:
        status, document = await self._request("GET", jwks_uri)
        try:
            if status != 200 or document is None:
                raise ValueError(f"HTTP {status}")
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as error:
            log.warning("OIDC keys unreadable", extra={"url": jwks_uri, "error": str(error)})
            raise OidcRefused("The identity provider's signing keys could not be read.") from None

    # -- the flow ----------------------------------------------------------------------------

    def begin(self, redirect_uri: str) -> tuple[str, OidcPending]:
        """The URL of the provider's authorization endpoint to send a person to, and what to
        keep until they come back. Discovery must have been done (``await discover()``)."""
        if self._provider is None:
            raise RuntimeError("OidcClient.begin before discover()")
        pending = OidcPending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),  # 64 characters (RFC 7636: 43 to 128)
            redirect_uri=redirect_uri,
            created=int(time.time()),
        )
        parameters = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.scopes,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": str(create_s256_code_challenge(pending.code_verifier)),
            "code_challenge_method": "S256",
        }
        # The endpoint may carry a query of its own (some providers name a tenant there).
        parts = urlsplit(self._provider.authorization_endpoint)
        query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *parameters.items()])
        return urlunsplit(parts._replace(query=query)), pending

    async def finish(self, code: str, state: str, pending: OidcPending) -> OidcIdentity:
        """The identity of the person the provider sent back with ``code`` and ``state``, for
        the sign-in ``pending`` began; OidcRefused for anything wrong on the way."""
        age = time.time() - pending.created
        if not -LEEWAY <= age <= PENDING_MAX_AGE:
            raise OidcRefused("This sign-in took too long. Start again.")
        if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise OidcRefused(_START_AGAIN)
        if not code or len(code) > MAX_CODE or not code.isprintable():
            raise OidcRefused("The identity provider sent back no usable sign-in code.")
        provider = await self.discover()
        token = await self._exchange(provider, code, pending)
        claims = await self._verify(provider, token, pending)
        return self._identity(claims)

    async def _exchange(self, provider: OidcProvider, code: str, pending: OidcPending) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        headers = {}
        if provider.auth_method == "client_secret_basic":
            # RFC 6749 2.3.1: the id and secret are form-encoded before they are joined.
            client_id, secret = self.settings.client_id, self.settings.client_secret
            pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.settings.client_id,
                     "client_secret": self.settings.client_secret}  # fmt: skip
        status, answer = await self._request(
            "POST", provider.token_endpoint, data=form, headers=headers
        )
        if status != 200 or answer is None:
            error = answer.get("error") if answer else None
            log.warning("OIDC token exchange refused", extra={"status": status, "error": error})
            if error == "invalid_grant":
                raise OidcRefused(
                    "The identity provider refused the sign-in code: it was used already, has "
                    "expired, or was issued for another sign-in. Start again."
                )
            if error in ("invalid_client", "unauthorized_client"):
                raise OidcRefused(
                    "The identity provider refused this service's client credentials."
                )
            raise OidcRefused(
                f"The identity provider refused to exchange the sign-in code (HTTP {status})."
            )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcRefused("The identity provider answered without an ID token.")
        return id_token

    async def _verify(
        self, provider: OidcProvider, id_token: str, pending: OidcPending
    ) -> dict[str, Any]:
        try:
            keys = self._keys or await self._fetch_keys(provider.jwks_uri)
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(provider.algorithms))
            except InvalidKeyIdError:
                # A key the provider published after ours were fetched: it rotated them.
                keys = await self._fetch_keys(provider.jwks_uri)
                self._keys = keys
                decoded = jwt.decode(id_token, keys, algorithms=list(provider.algorithms))
        except InvalidKeyIdError:
            raise OidcRefused(
                "The ID token is signed with a key the identity provider does not publish."
            ) from None
        except BadSignatureError:
            raise OidcRefused("The ID token's signature does not verify.") from None
        except (UnsupportedAlgorithmError, MissingAlgorithmError):
            raise OidcRefused(
                "The ID token is signed with an algorithm this service does not accept."
            ) from None
        except (JoseError, ValueError, TypeError) as error:
            log.warning("OIDC ID token unreadable", extra={"error": type(error).__name__})
            raise OidcRefused("The ID token is malformed.") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcRefused("The ID token has expired.") from None
        except ClaimError as error:
            raise OidcRefused(_CLAIM_REFUSALS.get(error.claim, _MALFORMED_CLAIMS)) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.settings.client_id:
            raise OidcRefused(_CLAIM_REFUSALS["aud"])
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), pending.nonce.encode()
        ):
            raise OidcRefused(_CLAIM_REFUSALS["nonce"])
        return claims

    def _identity(self, claims: Mapping[str, Any]) -> OidcIdentity:
        name = self.settings.claim
        held = claims.get(name)
        values: set[str] = set()
        if isinstance(held, str):
            values = {held}
        elif isinstance(held, list):
            values = {value for value in held if isinstance(value, str)}
        if not values:
            raise OidcRefused(
                f"Your account at the identity provider has no {name!r} claim, so this service "
                "cannot tell your role. Ask an administrator."
            )
        best: MappingEntry | None = None
        for entry in self.settings.mapping:
            if entry.value in values and (
                best is None or ROLES.index(entry.role) > ROLES.index(best.role)
            ):
                best = entry
        if best is None:
            raise OidcRefused(
                f"None of your {name!r} at the identity provider gives access to this service. "
                "Ask an administrator."
            )
        subject = str(claims["sub"])
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        shown = next(
            (v for v in (claims.get("preferred_username"), email) if isinstance(v, str) and v),
            subject,
        )
        return OidcIdentity(subject, shown, email, best.tenant, best.role)

    # -- http --------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """The status and the JSON object answered (None when the body is no JSON object);
        OidcRefused when the provider cannot be reached in time or answers too much."""
        try:
            if self._session is not None:
                return await self._send(self._session, method, url, data, headers or {})
            async with aiohttp.ClientSession() as session:
                return await self._send(session, method, url, data, headers or {})
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("OIDC provider unreachable", extra={"url": url, "error": repr(error)})
            raise OidcRefused(_UNREACHABLE) from None

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> tuple[int, dict[str, Any] | None]:
        async with session.request(
            method, url, data=data, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            headers={"Accept": "application/json", **headers},
        ) as response:  # fmt: skip
            body = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > MAX_RESPONSE:
                    raise OidcRefused("The identity provider answered with too much data.")
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                return response.status, None
            return response.status, parsed if isinstance(parsed, dict) else None


_MALFORMED_CLAIMS = "The ID token's claims are malformed."
_CLAIM_REFUSALS = {
    "iss": "The ID token was issued by another issuer than the configured one.",
    "aud": "The ID token was issued for another client than this service.",
    "sub": "The ID token names no subject.",
    "exp": "The ID token has no valid expiry.",
    "iat": "The ID token was issued in the future (check the clocks).",
    "nbf": "The ID token is not valid yet (check the clocks).",
    "nonce": "The ID token does not belong to this sign-in (its nonce differs). Start again.",
}
