"""Single sign-on in Chromium: a person opens the console, is sent to log in, follows the link
to the identity provider (tests/access/oidc_provider.py's, which consents at once and sends
them back) and lands on the page they asked for, with their name and mapped role in the header.

The provider is reached as ``localhost`` and the console as ``127.0.0.1``: two sites, so the
way back is the cross-site navigation it is in production (cookies' SameSite rules apply)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from flowlog.console.oidc import PENDING_COOKIE
from tests.access.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    MockProvider,
    TestProvider,
    oidc_mock,
    oidc_provider,
)
from tests.browser.conftest import Console, running_console

__all__ = ["oidc_mock", "oidc_provider"]  # the providers' fixtures, for this module's tests

MAP = "flowlog-viewers=acme:viewer,flowlog-admins=acme:admin"


def console_of(server_url: str, template: str, issuer: str) -> Any:
    env = {"FLOWLOG_OIDC_ISSUER": issuer, "FLOWLOG_OIDC_CLIENT_ID": CLIENT_ID,
           "FLOWLOG_OIDC_CLIENT_SECRET": CLIENT_SECRET, "FLOWLOG_OIDC_MAP": MAP}  # fmt: skip
    return running_console(server_url, template, "--definitions", "flowlog.demo", env=env)


def elsewhere(issuer: str) -> str:
    """The provider's URL as another site than the console's (127.0.0.1)."""
    return f"http://localhost:{urlsplit(issuer).port}"


@pytest.fixture
def sso_console(
    server_url: str, template_database: str, oidc_provider: TestProvider
) -> Iterator[Console]:
    """A console whose provider consents at once (a click, and the person is back)."""
    oidc_provider.issuer = elsewhere(oidc_provider.issuer)
    with console_of(server_url, template_database, oidc_provider.issuer) as served:
        yield served


@pytest.fixture
def mock_console(
    server_url: str, template_database: str, oidc_mock: MockProvider
) -> Iterator[Console]:
    """A console whose provider (oidc-provider-mock) asks who signs in, on a form of its own
    site: the way back starts there, a cross-site navigation."""
    oidc_mock.issuer = elsewhere(oidc_mock.issuer)
    with console_of(server_url, template_database, oidc_mock.issuer) as served:
        yield served


def sign_in(page: Any, console: Console, start: str = "/") -> None:
    page.goto(console.url(start))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_role("link", name="Log in with your organisation's account").click()


def test_a_person_signs_in_at_the_provider_and_lands_on_the_flows_page(
    page: Any, sso_console: Console, oidc_provider: TestProvider, tmp_path: Path
) -> None:
    console = sso_console
    page.goto(console.url("/"))
    expect(page).to_have_url(console.url("/login?next=%2F"))
    page.screenshot(path=str(tmp_path / "sso-login.png"))

    page.get_by_role("link", name="Log in with your organisation's account").click()
    expect(page).to_have_url(console.url("/"))
    who = page.locator(".who")
    expect(who).to_contain_text("Signed in as alice, tenant acme")
    expect(who.locator(".role")).to_have_text("admin")
    expect(page.get_by_role("heading", level=1)).to_have_text("Flows")
    cookies = {c["name"] for c in page.context.cookies()}
    assert PENDING_COOKIE not in cookies  # the pending sign-in is cleared once finished
    page.screenshot(path=str(tmp_path / "sso-landed.png"))

    # A page asked for before logging in is where the sign-in ends.
    page.context.clear_cookies()
    sign_in(page, console, "/definitions")
    expect(page).to_have_url(console.url("/definitions"))
    expect(page.locator(".who .role")).to_have_text("admin")


def test_a_viewer_sees_their_role_and_no_actions_on_a_flow(
    page: Any, sso_console: Console, oidc_provider: TestProvider, tmp_path: Path
) -> None:
    oidc_provider.next_login({"sub": "u-vera", "preferred_username": "vera",
                              "groups": ["flowlog-viewers"]})  # fmt: skip
    sign_in(page, sso_console)
    expect(page).to_have_url(sso_console.url("/"))
    expect(page.locator(".who")).to_contain_text("Signed in as vera, tenant acme")
    expect(page.locator(".who .role")).to_have_text("viewer")
    page.screenshot(path=str(tmp_path / "sso-viewer.png"))


def test_a_refused_sign_in_shows_why_on_the_log_in_page(
    page: Any, sso_console: Console, oidc_provider: TestProvider, tmp_path: Path
) -> None:
    oidc_provider.next_login({"sub": "u-nobody", "groups": ["elsewhere"]})
    sign_in(page, sso_console, "/definitions")
    expect(page.get_by_role("alert")).to_contain_text(
        "None of your 'groups' at the identity provider gives access to this service."
    )
    expect(page.locator(".who .role")).to_have_count(0)
    assert {c["name"] for c in page.context.cookies()} <= {PENDING_COOKIE}
    page.screenshot(path=str(tmp_path / "sso-refused.png"))


def test_a_person_signs_in_on_the_providers_form_and_lands_signed_in(
    page: Any, mock_console: Console, oidc_mock: MockProvider, tmp_path: Path
) -> None:
    oidc_mock.set_user("bob", {"preferred_username": "bob", "groups": ["flowlog-admins"]})
    sign_in(page, mock_console, "/definitions")
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()
    page.get_by_placeholder("sub").fill("bob")
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(mock_console.url("/definitions"))
    expect(page.locator(".who")).to_contain_text("Signed in as bob, tenant acme")
    expect(page.locator(".who .role")).to_have_text("admin")
    page.screenshot(path=str(tmp_path / "sso-mock-landed.png"))


def test_a_person_who_denies_at_the_provider_is_told_so(
    page: Any, mock_console: Console, oidc_mock: MockProvider
) -> None:
    sign_in(page, mock_console)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The identity provider did not sign you in (access_denied)."
    )
    # The provider's own words (error_description) are not shown: anyone can write them.
    expect(page.locator("main")).not_to_contain_text("resource owner")
    expect(page.locator(".who .role")).to_have_count(0)
