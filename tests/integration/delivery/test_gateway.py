"""The Twilio gateway's HTTP session, through the real twilio SDK against the
local Twilio simulator: the environment's proxy settings are read once, when
the gateway is built, never again per send."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.twilio_simulator import SimulatorConfig, SimulatorServer
from shared.delivery.gateway import OutboundMessage, TwilioGateway, TwilioSendError
from shared.platform.config import TwilioApiKeySettings, TwilioSettings

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "a7" * 16
SERVICE_SID = "MG" + "b8" * 16
KEY = TwilioApiKeySettings(
    TWILIO_API_KEY_SID="SK" + "c9" * 16,
    TWILIO_API_KEY_SECRET="gateway-key-secret",  # noqa: S106 - a test key
)
PHONE = "+12125550177"
# Nothing listens here: a request sent through this "proxy" fails to connect.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(
        ACCOUNT_SID,
        "gateway-test-token",
        callback_delay_ms=5,
        api_keys={KEY.api_key_sid: KEY.api_key_secret},
        rest_requires_api_key=True,
    )
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)


def gateway_for(server: SimulatorServer) -> TwilioGateway:
    settings = TwilioSettings(
        PUBLIC_BASE_URL="http://127.0.0.1:9",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_MESSAGING_SERVICE_SID=SERVICE_SID,
        TWILIO_API_BASE_URL=server.base_url,
    )
    return TwilioGateway(settings, KEY)


def outbound(body: str) -> OutboundMessage:
    return OutboundMessage(
        to=PHONE,
        body=body,
        status_callback="http://127.0.0.1:9/twilio/status",
        messaging_service_sid=SERVICE_SID,
    )


def bodies_sent(server: SimulatorServer) -> list[str]:
    return [m["body"] for m in server.simulator.messages_view(PHONE)["messages"]]


def test_a_proxy_set_after_start_up_is_not_read_per_send(
    simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = gateway_for(simulator)
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("http_proxy", DEAD_PROXY)

    accepted = gateway.send(outbound("sent directly"))

    assert accepted.sid.startswith("SM")
    assert bodies_sent(simulator) == ["sent directly"]


def test_a_proxy_set_at_start_up_is_used(
    simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("http_proxy", DEAD_PROXY)
    gateway = gateway_for(simulator)
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy")

    with pytest.raises(TwilioSendError) as failure:
        gateway.send(outbound("through the proxy"))

    assert failure.value.outcome_unknown
    assert bodies_sent(simulator) == []


def test_no_proxy_at_start_up_still_exempts_the_api_host(
    simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("http_proxy", DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    gateway = gateway_for(simulator)

    gateway.send(outbound("exempt from the proxy"))

    assert bodies_sent(simulator) == ["exempt from the proxy"]
