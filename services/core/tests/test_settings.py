import re
from pathlib import Path

import pytest

from panorama.core.settings import PanoramaSettings, SettingsError, env_file, require_secret

ROOT = Path(__file__).resolve().parents[3]


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


# --- .env: a checkout's file of variables, real environment variables winning


def test_a_dotenv_file_is_read_and_real_variables_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comments and other programs' variables are ignored\nPANORAMA_LOG_LEVEL=DEBUG\n"
                      "PANORAMA_CPU_LIMIT=3\nSOMETHING_ELSE=1\n")  # fmt: skip
    monkeypatch.setenv("PANORAMA_ENV_FILE", str(dotenv))
    monkeypatch.delenv("PANORAMA_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PANORAMA_CPU_LIMIT", raising=False)
    settings = PanoramaSettings.load()
    assert (settings.log_level, settings.cpu_limit) == ("DEBUG", 3.0)

    monkeypatch.setenv("PANORAMA_LOG_LEVEL", "ERROR")
    settings = PanoramaSettings.load()
    assert (settings.log_level, settings.cpu_limit) == ("ERROR", 3.0)


def test_a_bad_value_in_the_dotenv_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / "panorama.env"
    dotenv.write_text("PANORAMA_DB_POOL_SIZE=lots\n")
    monkeypatch.setenv("PANORAMA_ENV_FILE", str(dotenv))
    with pytest.raises(SettingsError, match="PANORAMA_DB_POOL_SIZE"):
        PanoramaSettings.load()


def test_in_a_checkout_the_file_is_the_repository_roots_dotenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANORAMA_ENV_FILE")
    assert env_file() == ROOT / ".env"


def test_the_example_names_only_variables_something_reads() -> None:
    from panorama.compute.settings import ComputeSettings
    from panorama.gateway.settings import GatewaySettings
    from panorama.io.settings import IoSettings
    from panorama.video_worker.settings import WorkerSettings
    from panorama.video_worker.tools import ENV_VARS

    known = {"PANORAMA_ENV_FILE", *ENV_VARS.values()}
    for cls in (GatewaySettings, IoSettings, ComputeSettings, WorkerSettings):
        known |= {f"PANORAMA_{name.upper()}" for name in cls.model_fields}
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^# (PANORAMA_[A-Z_]+)=", example, re.MULTILINE))
    assert len(named) >= 8
    assert named <= known, named - known
    # Every line is a comment: copying the example changes nothing until a line is uncommented.
    assert all(line.startswith("#") for line in example.splitlines() if line.strip())
