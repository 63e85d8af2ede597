"""The ``Host`` check: DNS rebinding names are refused, addresses and localhost answered."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serve.conftest import png_bytes
from trigeo.serve.app import create_app
from trigeo.serve.hosts import host_allowed, host_name


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "127.0.0.1:8000",
        "192.168.1.20:8000",
        "0.0.0.0:8000",
        "[::1]",
        "[::1]:8000",
        "[2001:db8::7]:80",
        "::1",
        "localhost",
        "localhost:8000",
        "LocalHost:8000",
        "localhost.:8000",
    ],
)
def test_ip_literals_and_localhost_are_answered(value):
    assert host_allowed(value)


@pytest.mark.parametrize(
    "value",
    [
        "attacker.example",
        "attacker.example:8000",
        "localhost.attacker.example",
        "127.0.0.1.attacker.example",
        "my-laptop:8000",
        "2130706433",  # a number is not an address literal a rebinding page could not own
        "",
        "[attacker.example]:80",
    ],
)
def test_other_names_are_refused(value):
    assert not host_allowed(value)


def test_allowed_hosts_are_answered_with_or_without_port():
    assert host_allowed("photos.lan:8000", ["Photos.LAN"])
    assert host_allowed("photos.lan", ["photos.lan:8000"])  # a port given with the name is dropped
    assert not host_allowed("other.lan", ["photos.lan"])
    assert host_allowed("anything.example", ["*"])
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:80") == "example.com"


def test_a_forged_host_gets_421_with_a_one_line_reason_on_every_path(engine):
    app = create_app(engine, allowed_hosts=["photos.lan"])
    with TestClient(app, base_url="http://attacker.example:8000") as client:
        for path in ("/", "/v1/model", "/v1/health", "/docs", "/v1/index/photos/0/thumbnail"):
            response = client.get(path)
            assert response.status_code == 421, path
            detail = response.json()["detail"]
            assert "attacker.example" in detail and "--allowed-host" in detail
            assert "\n" not in detail
        response = client.post("/v1/predict", files={"image": ("a.png", png_bytes())})
        assert response.status_code == 421
        assert app.state.admission.inflight == 0  # refused before admission
    for base in (
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
        "http://10.0.0.5",
        "http://photos.lan:8000",
    ):
        with TestClient(app, base_url=base) as client:
            assert client.get("/v1/health").status_code == 200, base
            response = client.post("/v1/predict", files={"image": ("a.png", png_bytes())})
            assert response.status_code == 200, base
