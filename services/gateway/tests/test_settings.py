import pytest

from panorama.core.settings import SettingsError
from panorama.gateway.settings import GatewaySettings

REAL_KEY = "k" * 24


def test_api_keys_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANORAMA_API_KEYS", raising=False)
    with pytest.raises(SettingsError, match="PANORAMA_API_KEYS"):
        GatewaySettings.load()


@pytest.mark.parametrize("value", ["changeme", ",", "short-key"])
def test_placeholder_or_weak_keys_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PANORAMA_API_KEYS", value)
    with pytest.raises(SettingsError, match="PANORAMA_API_KEYS") as info:
        GatewaySettings.load()
    assert f"got {value!r}" not in str(info.value)


def test_several_keys_are_split_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_API_KEYS", f" {REAL_KEY} , {REAL_KEY[::-1]}x ")
    assert GatewaySettings.load().api_key_list == (REAL_KEY, REAL_KEY[::-1] + "x")


def test_bad_upstream_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_API_KEYS", REAL_KEY)
    monkeypatch.setenv("PANORAMA_IO_URL", "not a url")
    with pytest.raises(SettingsError, match="PANORAMA_IO_URL"):
        GatewaySettings.load()


async def test_debug_plan_shows_the_upstream_sockets_behind_the_api_key() -> None:
    import httpx

    from panorama.gateway.app import create_app

    app = create_app(GatewaySettings(api_keys=REAL_KEY, upstream_connections=512, cpu_limit=1.0, log_json=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            assert (await client.get("/debug/plan")).status_code == 401
            shown = (await client.get("/debug/plan", headers={"X-API-Key": REAL_KEY})).json()
    assert shown["upstream_connections"] == 512
    assert shown["fds_needed"] == 3 * 512 + 256
    assert any("upstream sockets = 512 per downstream per worker" in line for line in shown["explanation"])


def test_an_over_large_upstream_pool_is_refused_naming_the_variable() -> None:
    from panorama.core.sizing import PlanError

    settings = GatewaySettings(api_keys=REAL_KEY, upstream_connections=20_000)
    with pytest.raises(PlanError, match="PANORAMA_UPSTREAM_CONNECTIONS"):
        settings.sizing()
