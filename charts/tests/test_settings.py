"""Settings the chart renders for the services: the internal token Secret and the gateway's rate limit."""

from __future__ import annotations

import os

import helm_python as helm
import pytest

from infra.deploy import chart
from panorama.compute.settings import ComputeSettings
from panorama.core.settings import PanoramaSettings
from panorama.gateway.settings import GatewaySettings
from panorama.io.settings import IoSettings

KIND = chart.CI_VALUES_DIR / "kind-values.yaml"
PRODUCTION = chart.CI_VALUES_DIR / "production-values.yaml"
TOKEN = "internal-token-under-test-0123456789"
HOLDERS = {"gateway": GatewaySettings, "io": IoSettings, "compute": ComputeSettings}


def render(*files, **overrides) -> chart.Rendered:
    return chart.render(chart.merge(chart.load_values(list(files or [KIND])), overrides))


def env_of(rendered: chart.Rendered, component: str) -> dict[str, str]:
    return chart.container_env(rendered, rendered.get("Deployment", f"panorama-{component}"))


def secret_ref(rendered: chart.Rendered, component: str, name: str) -> dict | None:
    container = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0]
    item = next((e for e in container.get("env") or [] if e["name"] == name), None)
    return None if item is None else item["valueFrom"]["secretKeyRef"]


def pod_settings(cls: type[PanoramaSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("PANORAMA_") or n == "WEB_CONCURRENCY"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls.load()


def test_gateway_io_and_compute_share_one_internal_token_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(internalToken={"token": TOKEN})
    secret = rendered.get("Secret", "panorama-internal-token")
    assert secret["stringData"] == {"internal-token": TOKEN}
    for component, settings_cls in HOLDERS.items():
        assert secret_ref(rendered, component, "PANORAMA_INTERNAL_TOKEN") == {
            "name": "panorama-internal-token",
            "key": "internal-token",
        }
        settings = pod_settings(settings_cls, env_of(rendered, component), monkeypatch)
        assert settings.internal_token is not None
        assert settings.internal_token.get_secret_value() == TOKEN
    # The worker calls no internal HTTP route: it gets no token.
    assert "PANORAMA_INTERNAL_TOKEN" not in env_of(rendered, "video-worker")
    for configmap in rendered.of_kind("ConfigMap"):
        assert TOKEN not in str(configmap.get("data"))
        assert "INTERNAL_TOKEN" not in str(configmap.get("data"))


def test_existing_internal_token_secret_replaces_the_charts_own() -> None:
    rendered = render(PRODUCTION)
    assert not [s for s in rendered.of_kind("Secret") if "internal-token" in s["metadata"]["name"]]
    for component in HOLDERS:
        assert secret_ref(rendered, component, "PANORAMA_INTERNAL_TOKEN") == {
            "name": "panorama-internal-token",
            "key": "internal-token",
        }
    named = render(PRODUCTION, internalToken={"existingSecret": "vault-synced-token"})
    assert secret_ref(named, "compute", "PANORAMA_INTERNAL_TOKEN")["name"] == "vault-synced-token"


@pytest.mark.parametrize("token", ["", "short-token"])
def test_missing_or_short_internal_token_fails_saying_how_to_set_it(token: str) -> None:
    with pytest.raises(helm.HelmError, match=r"internalToken.token must be set to at least 16 characters.*openssl"):
        render(internalToken={"token": token})


def test_gateway_rate_limit_defaults_to_100_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render()
    env = env_of(rendered, "gateway")
    assert env["PANORAMA_RATE_LIMIT"] == "100/second"
    assert pod_settings(GatewaySettings, env, monkeypatch).rate_limit_or_none == "100/second"
    for component in ("io", "compute", "video-worker"):
        assert "PANORAMA_RATE_LIMIT" not in env_of(rendered, component)


@pytest.mark.parametrize(
    ("value", "effective"),
    [("5000/minute;200/second", "5000/minute;200/second"), ("off", None), ("10 per hour", "10 per hour")],
)
def test_gateway_rate_limit_value_reaches_the_pod_and_the_gateway_accepts_it(
    value: str, effective: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_of(render(gateway={"rateLimit": value}), "gateway")
    assert env["PANORAMA_RATE_LIMIT"] == value
    assert pod_settings(GatewaySettings, env, monkeypatch).rate_limit_or_none == effective


@pytest.mark.parametrize("value", ["lots", "100", "100/fortnight", ""])
def test_schema_refuses_a_rate_limit_the_gateway_could_not_parse(value: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="rateLimit"):
        render(gateway={"rateLimit": value})
