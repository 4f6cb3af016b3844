"""The lean SigV4 signer against botocore's own: the same headers, the same signature."""

from __future__ import annotations

import datetime
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from s3zoom.sigv4 import S3Signer

MOMENT = datetime.datetime(2026, 11, 24, 23, 59, 58, tzinfo=datetime.timezone.utc)
HOST = "127.0.0.1:9000"


class FrozenCredentials:
    """What S3Signer asks botocore's (refreshable) credentials for."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def get_frozen_credentials(self) -> Credentials:
        return self.credentials


def botocore_headers(
    monkeypatch: pytest.MonkeyPatch, credentials: Credentials, region: str, path: str, headers: dict, body: bytes
) -> dict[str, str]:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: MOMENT.replace(tzinfo=None))
    request = AWSRequest(method="PUT", url=f"http://{HOST}{path}", data=body, headers=dict(headers))
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def lean_headers(credentials: Credentials, region: str, path: str, headers: dict, body: bytes) -> dict[str, str]:
    signer = S3Signer(FrozenCredentials(credentials), region, clock=MOMENT.timestamp)
    return signer.sign("PUT", HOST, path, headers, body)


TILE_HEADERS = {
    "Content-Type": "image/jpeg",
    "Cache-Control": "public,  max-age=86400 ",  # SigV4 trims and collapses spaces in values
    "x-amz-meta-lambdazoom-source-key": quote("photos/a b.jpg"),
    "x-amz-meta-lambdazoom-settings": "0123456789abcdef",
}


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])
def test_tile_put_signed_as_botocore_signs_it(monkeypatch, token, region):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    path = "/zoom/" + quote("photos/a b_files/12/3_4.jpg", safe="/~")
    ours = lean_headers(credentials, region, path, TILE_HEADERS, b"\xff\xd8tile")
    theirs = botocore_headers(monkeypatch, credentials, region, path, TILE_HEADERS, b"\xff\xd8tile")
    assert ours == theirs
    assert ("x-amz-security-token" in ours) == (token is not None)


@settings(max_examples=60, deadline=None)
@given(
    key=st.text(min_size=1, max_size=40).filter(lambda key: "\x00" not in key),
    body=st.binary(max_size=64),
    secret=st.text(alphabet="abcdefghijKLMNOP0123456789+/", min_size=1, max_size=40),
)
def test_any_key_and_body_signed_as_botocore_signs_it(key, body, secret):
    credentials = Credentials("AKIDEXAMPLE", secret)
    path = "/zoom/" + quote(key, safe="/~")
    with pytest.MonkeyPatch.context() as monkeypatch:
        theirs = botocore_headers(monkeypatch, credentials, "us-east-1", path, TILE_HEADERS, body)
    assert lean_headers(credentials, "us-east-1", path, TILE_HEADERS, body) == theirs


def botocore_authorization(credentials: Credentials, at: datetime.datetime) -> str:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: at.replace(tzinfo=None))
        request = AWSRequest(method="PUT", url=f"http://{HOST}/zoom/a.jpg", data=b"")
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    return request.headers["Authorization"]


def test_signing_key_follows_the_day_and_the_credentials():
    """The key is kept for the day; a new day or rotated credentials derive a new one."""
    now = [MOMENT]
    credentials = FrozenCredentials(Credentials("AKIDEXAMPLE", "first-secret"))
    signer = S3Signer(credentials, "us-east-1", clock=lambda: now[0].timestamp())
    for moment, secret in [
        (MOMENT, "first-secret"),
        (MOMENT + datetime.timedelta(seconds=2), "first-secret"),  # past midnight UTC: the next day's key
        (MOMENT + datetime.timedelta(seconds=3), "second-secret"),  # rotated credentials: their key
    ]:
        now[0] = moment
        credentials.credentials = Credentials("AKIDEXAMPLE", secret)
        ours = signer.sign("PUT", HOST, "/zoom/a.jpg", {}, b"")["authorization"]
        assert ours == botocore_authorization(credentials.credentials, moment)
