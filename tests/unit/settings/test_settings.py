"""Settings: env vars and .env, validated at start-up with messages naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cutout_cli.main import cli
from settings import Settings, SettingsError, load_settings
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CUTOUT_MODEL", "CUTOUT_BACKGROUND", "CUTOUT_MODEL_HOME", "U2NET_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    s = load_settings()
    assert s.model == "u2net"
    assert s.output_format == "png"
    assert s.background == "transparent"
    assert s.model_home == Path("/home/someone/.u2net")
    assert s.provider_list is None


def test_model_home_reuses_rembg_cache_then_ours_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("U2NET_HOME", "/srv/rembg-models")
    assert load_settings().model_home == Path("/srv/rembg-models")
    monkeypatch.setenv("CUTOUT_MODEL_HOME", "/srv/cutout-models")
    assert load_settings().model_home == Path("/srv/cutout-models")


def test_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CUTOUT_MODEL=u2netp\nCUTOUT_BACKGROUND=#ff000080\n")
    s = load_settings()
    assert (s.model, s.background) == ("u2netp", "#ff000080")
    monkeypatch.setenv("CUTOUT_MODEL", "silueta")  # the environment beats .env
    assert load_settings().model == "silueta"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CUTOUT_BACKGROUND", "#GGG", "transparent, blur, a colour"),
        ("CUTOUT_BACKGROUND", "no/such/file.png", "neither a colour nor an existing image"),
        ("CUTOUT_MODEL", "bria-rmbg", "u2net, u2netp, u2net_human_seg, silueta"),
        ("CUTOUT_OUTPUT_FORMAT", "gif", "png, webp, jpg"),
        ("CUTOUT_PNG_COMPRESS_LEVEL", "13", "less than or equal to 12"),
        ("CUTOUT_PROVIDERS", "auto,CPUExecutionProvider", "auto cannot be combined"),
        ("CUTOUT_MAX_PIXELS", "lots", "valid integer"),
    ],
)
def test_bad_value_names_variable_and_accepted_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert f"{name}={value!r}" in message
    assert expected in message


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_background_image_path_and_providers(tmp_path: Path) -> None:
    backdrop = tmp_path / "beach.jpg"
    backdrop.write_bytes(b"x")
    s = load_settings(background=str(backdrop), providers="CPUExecutionProvider")
    assert s.background == str(backdrop)
    assert s.provider_list == ["CPUExecutionProvider"]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`CUTOUT_{name.upper()}`" in readme, name


def test_rediss_urls_check_the_certificate_by_default(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = load_settings(broker_url="rediss://:p%40ss@redis.example:6380/0", redis_ca_file=str(ca))
    verified = f"rediss://:p%40ss@redis.example:6380/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert s.broker_url == verified
    assert s.status_url == verified  # the result backend defaults to the broker
    assert load_settings(broker_url=s.broker_url).broker_url == verified  # idempotent
    # What the URL says wins; plain redis:// is left alone.
    s = load_settings(broker_url="rediss://h/0?ssl_cert_reqs=none", result_backend="redis://h/1")
    assert (s.broker_url, s.result_backend) == ("rediss://h/0?ssl_cert_reqs=none", "redis://h/1")
    assert "broker_url" not in load_settings().model_fields_set  # `cutout up` relies on it


@pytest.mark.parametrize(
    ("url", "ca", "expected"),
    [
        ("redis://h/0", "ca.pem", "set, but no Redis URL uses rediss://"),
        ("rediss://h/0", "missing.pem", "no such file"),
    ],
)
def test_bad_redis_ca_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, ca: str, expected: str
) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("CUTOUT_BROKER_URL", url)
    monkeypatch.setenv("CUTOUT_REDIS_CA_FILE", ca)
    with pytest.raises(SettingsError, match=f"CUTOUT_REDIS_CA_FILE='{ca}': {expected}"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://:s3cret-pw@host:notaport/0", "the port is not a number"),
        ("http://:s3cret-pw@host:6379/0", "not a Redis URL"),
        ("redis://s3cret-pw@host:port/0", "the port is not a number"),
        ("rediss://user:s3cret-pw@host:99999999999/0", "the port is not a number"),
    ],
)
@pytest.mark.parametrize("variable", ["CUTOUT_BROKER_URL", "CUTOUT_RESULT_BACKEND"])
def test_a_bad_redis_url_is_named_and_its_password_never_shown(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str, reason: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert f"{variable}=" in message and reason in message
    assert "s3cret-pw" not in message and "***" in message
    # The CLI says the same in one message and exit 3, no traceback.
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 3 and reason in result.output
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


GARBAGE = ["", " ", "-1", "0", "x" * 5000, "1e999", "redis://:pw@h:notaport/0", "a,,b", "\x1b[2J"]


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_no_value_of_any_setting_is_a_traceback(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    """Every setting, given odd values: it loads, or it says what is wrong, naming it."""
    for value in GARBAGE:
        monkeypatch.setenv(f"CUTOUT_{field.upper()}", value)
        try:
            load_settings()
        except SettingsError as refused:
            assert f"CUTOUT_{field.upper()}=" in str(refused), (field, value)


@pytest.mark.parametrize("prefix", ["", "a:b", "jobs*", "x" * 65, "café"])
def test_bad_key_prefix_names_the_variable_and_what_is_accepted(prefix: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(key_prefix=prefix)
    assert "CUTOUT_KEY_PREFIX" in str(caught.value)
    assert "1 to 64 characters among ASCII letters, digits, _ . and -" in str(caught.value)


def test_key_prefix_default_and_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().key_prefix == "cutout"
    monkeypatch.setenv("CUTOUT_KEY_PREFIX", "shop-2.eu_west")
    assert load_settings().key_prefix == "shop-2.eu_west"
