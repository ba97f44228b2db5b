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
