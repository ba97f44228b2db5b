import pytest

from panorama.core.settings import PanoramaSettings, SettingsError, require_secret


def test_bad_value_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_DB_POOL_SIZE", "lots")
    with pytest.raises(SettingsError, match="PANORAMA_DB_POOL_SIZE"):
        PanoramaSettings.load()


def test_web_concurrency_is_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PANORAMA_CPU_LIMIT", "1")
    settings = PanoramaSettings.load()
    assert settings.sizing().workers == 3


def test_invalid_web_concurrency_names_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "0")
    with pytest.raises(SettingsError, match="WEB_CONCURRENCY"):
        PanoramaSettings.load()


def test_cpu_limit_setting_overrides_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_CPU_LIMIT", "1.5")
    assert PanoramaSettings.load().sizing().workers == 2


@pytest.mark.parametrize("value", ["", "changeme", "CHANGE-ME", " secret "])
def test_placeholder_secrets_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="PANORAMA_API_KEYS"):
        require_secret("PANORAMA_API_KEYS", value)


def test_settings_without_a_database_url_plan_no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_CPU_LIMIT", "6")
    assert PanoramaSettings.load().sizing().connections_total == 0


def test_settings_with_a_database_url_are_held_to_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import Field

    from panorama.core.sizing import PlanError

    class WithDb(PanoramaSettings):
        database_url: str = Field(default="sqlite+aiosqlite://")

    monkeypatch.setenv("PANORAMA_CPU_LIMIT", "6")
    with pytest.raises(PlanError, match="over by 30"):
        WithDb.load().sizing()
