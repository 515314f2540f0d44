"""The OpenID Connect client against real providers over HTTP: oidc-provider-mock for the
happy path and a replayed code, this folder's TestProvider for every forged or broken answer."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from flowlog.access.oidc import OidcClient, OidcIdentity, OidcPending, OidcRefused
from flowlog.access.oidc_settings import MappingEntry, OidcSettings
from tests.access.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    MockProvider,
    TestProvider,
    authorize,
)

MAPPING = OidcSettings.parse_mapping(
    "flowlog-viewers=acme:viewer, flowlog-ops=acme:operator, flowlog-admins=acme:admin,"
    "flowlog-root=*:superadmin, flowlog-ops=globex:viewer"
)


def settings(issuer: str, /, **changes: Any) -> OidcSettings:
    values: dict[str, Any] = {"issuer": issuer, "client_id": CLIENT_ID,
                              "client_secret": CLIENT_SECRET, "mapping": MAPPING}  # fmt: skip
    return OidcSettings(**(values | changes))


async def sign_in(client: OidcClient, *, sub: str | None = None) -> OidcIdentity:
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url, sub=sub)
    return await client.finish(code, state, pending)


async def refusal(client: OidcClient) -> str:
    with pytest.raises(OidcRefused) as refused:
        await sign_in(client)
    return refused.value.reason


# -- the happy paths ---------------------------------------------------------------------------


async def test_the_code_flow_at_oidc_provider_mock_yields_the_mapped_identity(
    oidc_mock: MockProvider,
) -> None:
    claims = {"preferred_username": "bob", "email": "bob@example.com",
              "groups": ["unrelated", "flowlog-ops"]}  # fmt: skip
    oidc_mock.set_user("bob", claims)
    identity = await sign_in(OidcClient(settings(oidc_mock.issuer)), sub="bob")
    assert identity == OidcIdentity("bob", "bob", "bob@example.com", "acme", "operator")


async def test_a_code_used_twice_is_refused_by_oidc_provider_mock(oidc_mock: MockProvider) -> None:
    oidc_mock.set_user("bob", {"groups": ["flowlog-admins"]})
    client = OidcClient(settings(oidc_mock.issuer))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url, sub="bob")
    assert (await client.finish(code, state, pending)).role == "admin"
    with pytest.raises(OidcRefused, match="used already"):
        await client.finish(code, state, pending)


async def test_the_authorization_url_asks_for_a_code_with_pkce_s256(
    oidc_provider: TestProvider,
) -> None:
    client = OidcClient(settings(oidc_provider.issuer, scopes="openid email profile groups"))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{oidc_provider.issuer}/authorize"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    digest = hashlib.sha256(pending.code_verifier.encode()).digest()
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile groups",
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    assert len({pending.state, pending.nonce, pending.code_verifier}) == 3
    assert 43 <= len(pending.code_verifier) <= 128


async def test_the_code_flow_yields_the_mapped_identity(oidc_provider: TestProvider) -> None:
    identity = await sign_in(OidcClient(settings(oidc_provider.issuer)))
    assert identity == OidcIdentity("user-alice", "alice", "alice@example.com", "acme", "admin")


async def test_client_secret_post_when_the_provider_offers_only_that(
    oidc_provider: TestProvider,
) -> None:
    oidc_provider.auth_methods = ["client_secret_post"]
    assert (await sign_in(OidcClient(settings(oidc_provider.issuer)))).role == "admin"


@pytest.mark.parametrize(
    ("held", "mapping", "expected"),
    [
        # the highest role wins, whatever the order of the claim's values
        (["flowlog-viewers", "flowlog-admins", "flowlog-ops"], MAPPING, ("acme", "admin")),
        # one value mapped twice: the higher role (acme operator over globex viewer)
        (["flowlog-ops"], MAPPING, ("acme", "operator")),
        (["flowlog-root", "flowlog-admins"], MAPPING, ("*", "superadmin")),
        # equal roles: the first entry of the mapping, not the first value of the claim
        (["b", "a"], "a=first:admin,b=second:admin", ("first", "admin")),
        # a string claim is one value; values that are no strings are ignored
        ("flowlog-viewers", MAPPING, ("acme", "viewer")),
        ([7, {"x": 1}, "flowlog-viewers"], MAPPING, ("acme", "viewer")),
        (["flowlog-ops-2", "flowlog-op"], MAPPING, None),
    ],
)
async def test_the_highest_role_of_every_matching_entry(
    oidc_provider: TestProvider, held: Any, mapping: Any, expected: tuple[str, str] | None
) -> None:
    if isinstance(mapping, str):
        mapping = OidcSettings.parse_mapping(mapping)
    oidc_provider.next_login({"sub": "s", "groups": held})
    client = OidcClient(settings(oidc_provider.issuer, mapping=mapping))
    if expected is None:
        assert "gives access" in await refusal(client)
    else:
        identity = await sign_in(client)
        assert (identity.tenant, identity.role) == expected


async def test_another_claim_name_maps(oidc_provider: TestProvider) -> None:
    oidc_provider.next_login({"sub": "s", "groups": ["flowlog-admins"], "roles": "flowlog-ops"})
    identity = await sign_in(OidcClient(settings(oidc_provider.issuer, claim="roles")))
    assert identity.role == "operator"


@pytest.mark.parametrize(
    ("claims", "name", "email"),
    [
        ({"preferred_username": "al", "email": "a@example.com"}, "al", "a@example.com"),
        ({"email": "a@example.com"}, "a@example.com", "a@example.com"),
        ({}, "subject-1", None),
        ({"preferred_username": 5, "email": ["a@example.com"]}, "subject-1", None),
    ],
)
async def test_the_name_shown_is_the_username_or_the_email_or_the_subject(
    oidc_provider: TestProvider, claims: dict[str, Any], name: str, email: str | None
) -> None:
    oidc_provider.next_login({"sub": "subject-1", "groups": ["flowlog-ops"], **claims})
    identity = await sign_in(OidcClient(settings(oidc_provider.issuer)))
    assert (identity.subject, identity.name, identity.email) == ("subject-1", name, email)


async def test_several_audiences_with_this_client_as_azp_are_accepted(
    oidc_provider: TestProvider,
) -> None:
    oidc_provider.next_login(token={"aud": ["other-api", CLIENT_ID], "azp": CLIENT_ID})
    assert (await sign_in(OidcClient(settings(oidc_provider.issuer)))).role == "admin"


async def test_a_rotated_key_is_fetched_again(oidc_provider: TestProvider) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    assert (await sign_in(client)).role == "admin"
    oidc_provider.rotate_key()
    assert (await sign_in(client)).role == "admin"


# -- refusals ------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("token", "signing", "reason"),
    [
        ({"iss": "http://127.0.0.1:1"}, "good", "issued by another issuer"),
        ({"iss": None}, "good", "issued by another issuer"),
        ({"exp": _now() - 120, "iat": _now() - 600}, "good", "has expired"),
        ({"exp": None}, "good", "no valid expiry"),
        ({"iat": _now() + 3600}, "good", "issued in the future"),
        ({"aud": "someone-else"}, "good", "for another client"),
        ({"aud": ["other-api", CLIENT_ID]}, "good", "for another client"),
        ({"aud": ["other-api", CLIENT_ID], "azp": "other-api"}, "good", "for another client"),
        ({"azp": "other-api"}, "good", "for another client"),
        ({"nonce": "not-this-sign-in"}, "good", "nonce differs"),
        ({"nonce": None}, "good", "nonce differs"),
        ({"nonce": ["not-this-sign-in", "x"]}, "good", "nonce differs"),
        ({"sub": None}, "good", "names no subject"),
        ({}, "other-key", "signature does not verify"),
        ({}, "tampered", "signature does not verify"),
        ({}, "unpublished", "key the identity provider does not publish"),
        ({}, "hs256", "algorithm this service does not accept"),
        ({}, "none", "algorithm this service does not accept"),
    ],
)
async def test_a_forged_or_broken_id_token_is_refused(
    oidc_provider: TestProvider, token: dict[str, Any], signing: str, reason: str
) -> None:
    oidc_provider.next_login(token=token, signing=signing)
    assert reason in await refusal(OidcClient(settings(oidc_provider.issuer)))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "s"}, "has no 'groups' claim"),
        ({"sub": "s", "groups": []}, "has no 'groups' claim"),
        ({"sub": "s", "groups": None}, "has no 'groups' claim"),
        ({"sub": "s", "groups": {"flowlog-admins": True}}, "has no 'groups' claim"),
        ({"sub": "s", "groups": ["nobody", "FLOWLOG-ADMINS"]}, "gives access"),
    ],
)
async def test_a_missing_or_unmapped_claim_is_refused(
    oidc_provider: TestProvider, claims: dict[str, Any], reason: str
) -> None:
    oidc_provider.next_login(claims)
    assert reason in await refusal(OidcClient(settings(oidc_provider.issuer)))


async def test_a_discovery_naming_another_issuer_is_refused(oidc_provider: TestProvider) -> None:
    oidc_provider.discovery_issuer = "http://127.0.0.1:1"
    assert "names another issuer" in await refusal(OidcClient(settings(oidc_provider.issuer)))


async def test_settings_naming_another_issuer_are_refused(
    oidc_provider: TestProvider, oidc_mock: MockProvider
) -> None:
    # oidc-provider-mock names itself after the Host asked for, so only a trailing slash differs.
    for configured in (
        oidc_provider.issuer + "/",
        oidc_provider.issuer.replace("127.0.0.1", "localhost"),
        oidc_mock.issuer + "/",
    ):
        with pytest.raises(OidcRefused, match="names another issuer"):
            await OidcClient(settings(configured)).discover()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"token_endpoint": None}, "no usable token_endpoint"),
        ({"jwks_uri": "ftp://127.0.0.1/jwks"}, "no usable jwks_uri"),
        ({"authorization_endpoint": "/authorize"}, "no usable authorization_endpoint"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "none of the algorithms"),
        (
            {"token_endpoint_auth_methods_supported": ["private_key_jwt"]},
            "no client authentication",
        ),
        ({"jwks_uri": "http://127.0.0.1:9/nothing-listens-here"}, "could not be reached"),
    ],
)
async def test_a_discovery_document_this_client_cannot_use_is_refused(
    oidc_provider: TestProvider, changes: dict[str, Any], reason: str
) -> None:
    oidc_provider.discovery_changes = changes
    with pytest.raises(OidcRefused, match=reason):
        await OidcClient(settings(oidc_provider.issuer)).discover()


async def test_signing_keys_that_cannot_be_read_are_refused(oidc_provider: TestProvider) -> None:
    oidc_provider.discovery_changes = {
        "jwks_uri": f"{oidc_provider.issuer}/.well-known/openid-configuration"
    }
    with pytest.raises(OidcRefused, match="signing keys could not be read"):
        await OidcClient(settings(oidc_provider.issuer)).discover()


async def test_a_code_used_twice_is_refused(oidc_provider: TestProvider) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url)
    await client.finish(code, state, pending)
    with pytest.raises(OidcRefused, match="used already"):
        await client.finish(code, state, pending)


async def test_a_state_that_differs_is_refused_before_the_code_is_exchanged(
    oidc_provider: TestProvider,
) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url)
    for wrong in ("", state[:-1], state + "x", client.begin(REDIRECT_URI)[1].state):
        with pytest.raises(OidcRefused, match="does not match the one this service started"):
            await client.finish(code, wrong, pending)
    assert oidc_provider.token_requests == 0
    assert (await client.finish(code, state, pending)).role == "admin"


@pytest.mark.parametrize(
    "change",
    [
        {"code_verifier": "a-verifier-of-another-sign-in-that-is-long-enough-0123456789"},
        {"redirect_uri": "http://127.0.0.1:9/another/callback"},
    ],
)
async def test_a_code_exchanged_without_its_verifier_or_redirect_uri_is_refused(
    oidc_provider: TestProvider, change: dict[str, Any]
) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url)
    with pytest.raises(OidcRefused, match="issued for another sign-in"):
        await client.finish(code, state, replace(pending, **change))


async def test_a_wrong_client_secret_is_refused(oidc_provider: TestProvider) -> None:
    client = OidcClient(settings(oidc_provider.issuer, client_secret="not-the-secret"))
    assert "client credentials" in await refusal(client)


async def test_a_sign_in_begun_too_long_ago_is_refused(oidc_provider: TestProvider) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    await client.discover()
    url, pending = client.begin(REDIRECT_URI)
    code, state = await authorize(url)
    for created in (pending.created - 3600, pending.created + 3600):
        with pytest.raises(OidcRefused, match="took too long"):
            await client.finish(code, state, replace(pending, created=created))
    assert oidc_provider.token_requests == 0


@pytest.mark.parametrize("code", ["", "x" * 5000, "abc\x00def"])
async def test_an_unusable_code_is_refused_before_it_is_sent(
    oidc_provider: TestProvider, code: str
) -> None:
    client = OidcClient(settings(oidc_provider.issuer))
    await client.discover()
    _, pending = client.begin(REDIRECT_URI)
    with pytest.raises(OidcRefused, match="no usable sign-in code"):
        await client.finish(code, pending.state, pending)
    assert oidc_provider.token_requests == 0


async def test_an_unreachable_provider_is_said_to_be_unreachable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = OidcClient(settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(OidcRefused, match="could not be reached") as refused:
        await client.discover()
    assert str(port) not in refused.value.reason


async def test_a_discovery_document_that_is_not_there_is_refused(
    oidc_provider: TestProvider,
) -> None:
    client = OidcClient(settings(oidc_provider.issuer + "/elsewhere"))
    with pytest.raises(OidcRefused, match=r"discovery document could not be read \(HTTP 404\)"):
        await client.discover()


async def test_begin_before_discovery_is_a_programming_error(
    oidc_provider: TestProvider,
) -> None:
    with pytest.raises(RuntimeError, match="before discover"):
        OidcClient(settings(oidc_provider.issuer)).begin(REDIRECT_URI)


# -- what is kept between begin and finish ---------------------------------------------------


def test_a_pending_sign_in_goes_through_json_and_back() -> None:
    pending = OidcPending("s", "n", "v" * 64, REDIRECT_URI, 1_700_000_000)
    assert OidcPending.from_dict(orjson.loads(orjson.dumps(pending.as_dict()))) == pending


@pytest.mark.parametrize(
    "change",
    [
        {"state": None},
        {"nonce": ""},
        {"code_verifier": 5},
        {"created": "1700000000"},
        {"created": True},
        {"created": 1.5},
        {"extra": "x"},
    ],
)
def test_a_pending_sign_in_of_another_shape_is_refused(change: dict[str, Any]) -> None:
    data: dict[str, Any] = OidcPending("s", "n", "v", REDIRECT_URI, 1).as_dict() | change
    if change == {"state": None}:
        del data["state"]
    with pytest.raises(OidcRefused, match="Start again"):
        OidcPending.from_dict(data)


# -- settings --------------------------------------------------------------------------------


def test_a_mapping_parses_into_entries_in_order() -> None:
    text = " a=t:viewer ,, cn=x=y:admin,root=*:superadmin, org:team=t:operator "
    assert OidcSettings.parse_mapping(text) == (
        MappingEntry("a", "t", "viewer"),
        MappingEntry("cn=x", "y", "admin"),
        MappingEntry("root", "*", "superadmin"),
        MappingEntry("org:team", "t", "operator"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no entries"),
        (" , ,", "no entries"),
        ("admins", "value=tenant:role"),
        ("admins=acme", "value=tenant:role"),
        ("=acme:admin", "value=tenant:role"),
        ("admins=:admin", "value=tenant:role"),
        ("admins=acme:", "value=tenant:role"),
        ("admins=acme:root", "is none of viewer, operator, admin, superadmin"),
        ("admins=acme:Admin", "is none of"),
        ("admins=*:admin", "only for superadmin"),
        ("admins=acme:admin,admins=acme:viewer", "mapped to 'acme' twice"),
        ("ad mins=acme:admin", "spaces or control characters"),
        ("admins=ac\x00me:admin", "spaces or control characters"),
    ],
)
def test_a_bad_mapping_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OidcSettings.parse_mapping(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "http://idp.example.com"}, "https URL"),
        ({"issuer": "ftp://127.0.0.1"}, "https URL"),
        ({"issuer": "https://idp.example.com?realm=x"}, "query"),
        ({"client_id": ""}, "client id"),
        ({"scopes": "email profile"}, "openid"),
        ({"mapping": ()}, "no entries"),
        ({"claim": ""}, "claim"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(changes.pop("issuer", "https://idp.example.com"), **changes)


def test_plain_http_is_allowed_on_this_host_only() -> None:
    for issuer in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        assert settings(issuer).issuer == issuer
