"""The OpenAI-compatible endpoint client against a real HTTP server on 127.0.0.1: retries through
tenacity that honour Retry-After, timeouts, and credentials that never reach a message."""

import base64
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from nevermind.models.openai_api import Endpoint, EndpointError, parse_retry_after
from tests.endpoint_stub import Reply, endpoint_stub


def test_retry_after_is_waited_for():
    with endpoint_stub() as (stub, url):
        stub.script = [Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})]
        body = Endpoint(url, max_retries=2, backoff=0.01).request("POST", "chat/completions", {})
    assert body["choices"][0]["message"]["content"] == "1"
    assert len(stub.seen) == 2
    assert stub.seen[1].at - stub.seen[0].at >= 0.95  # the backoff alone would be 0.01 s


def test_retry_after_as_http_date_and_garbage():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(soon) <= 30
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon-ish") is None and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


def test_retry_after_longer_than_max_wait_stops_at_once():
    with endpoint_stub() as (stub, url):
        stub.script = [Reply(503, {}, {"Retry-After": "3600"})]
        started = time.monotonic()
        with pytest.raises(EndpointError, match="retry after 3600 s"):
            Endpoint(url, max_retries=3, backoff=0.01, max_wait=5).request("GET", "models")
    assert time.monotonic() - started < 3 and len(stub.seen) == 1


def test_timeouts_are_retried_then_reported():
    with endpoint_stub() as (stub, url):
        stub.script = [Reply(delay=1.0)]
        assert Endpoint(url, timeout=0.3, max_retries=1, backoff=0.01).request("GET", "models")
        assert len(stub.seen) == 2
        stub.script = [Reply(delay=1.0), Reply(delay=1.0)]
        with pytest.raises(EndpointError, match=r"timed out after 0.3 s \(2 attempts\)"):
            Endpoint(url, timeout=0.3, max_retries=1, backoff=0.01).request("GET", "models")


def test_5xx_exhausts_retries_with_backoff():
    with endpoint_stub() as (stub, url):
        stub.default = Reply(502, {"error": "bad gateway"})
        with pytest.raises(EndpointError, match=r"HTTP 502 \(3 attempts\)"):
            Endpoint(url, max_retries=2, backoff=0.2).request("GET", "models")
    gaps = [b.at - a.at for a, b in zip(stub.seen, stub.seen[1:])]
    assert len(stub.seen) == 3 and gaps[0] >= 0.15 and gaps[1] >= 0.35  # 0.2 s, then doubled


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-live-0123456789abcdef")
    with endpoint_stub() as (stub, url):
        secret_url = url.replace("http://", "http://alice:pw-s3cret-77@")
        endpoint = Endpoint(secret_url, api_key_env="STUB_KEY", max_retries=0)
        assert "pw-s3cret" not in endpoint.base_url and "alice" not in endpoint.base_url
        endpoint.request("GET", "models")
        sent = stub.seen[0].headers["authorization"]
        assert sent == "Basic " + base64.b64encode(b"alice:pw-s3cret-77").decode()
        # an error body that quotes the credentials back is scrubbed, never echoed verbatim
        stub.script = [Reply(400, {"error": {"message": "bad request from alice:pw-s3cret-77 with key "
                                                        "sk-live-0123456789abcdef at " + secret_url}})]
        with pytest.raises(EndpointError) as caught:
            endpoint.request("POST", "completions", {})
        message = str(caught.value)
        assert "HTTP 400" in message and "bad request" in message
        assert "pw-s3cret" not in message and "0123456789abcdef" not in message
        # a refused key: the body (which often quotes the key) is not shown at all
        stub.script = [Reply(401, {"error": {"message": "Incorrect API key provided: sk-live-0123456789abcdef"}})]
        with pytest.raises(EndpointError, match=r"HTTP 401: the endpoint refused the credentials") as caught:
            endpoint.request("GET", "models")
        assert "0123456789abcdef" not in str(caught.value) and "$STUB_KEY" in str(caught.value)
