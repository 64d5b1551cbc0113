"""Settings: precedence flag > FLEET_* > fleet.toml > default, coercion, unknown keys, masking,
and where fleet.toml is looked for."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from fleet import config
from fleet.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home and working directory, so no real fleet.toml is ever found."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.chdir(work)
    return home


def toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_defaults(home: Path) -> None:
    s = config.load({}, {})
    assert s.config_file is None
    assert s.get("ovh.endpoint") == "ovh-eu"
    assert s.get("rollout.concurrency") == 20
    assert s.get("ssh.trust_on_first_use") is True
    assert all(src == "default" for name, src in s.sources.items())
    assert s.state_dir == home / ".local" / "state" / "fleet"
    assert s.store_url == str(home / ".local" / "state" / "fleet" / "fleet.db")


def test_state_default_follows_xdg(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "xdg"))
    assert config.load({}, {}).state_dir == home / "xdg" / "fleet"


def test_precedence_flag_env_file_default(home: Path, tmp_path: Path) -> None:
    path = toml(
        tmp_path / "fleet.toml",
        """
        [rollout]
        concurrency = 5
        lease_ttl = 60
        [ovh]
        endpoint = "ovh-ca"
        rate_limit = 30
        """,
    )
    env = {"FLEET_ROLLOUT_CONCURRENCY": "7", "FLEET_OVH_ENDPOINT": "ovh-us"}
    s = config.load({"rollout.concurrency": 9, "ovh.rate_limit": None}, env, str(path))
    assert (s.get("rollout.concurrency"), s.sources["rollout.concurrency"]) == (9, "flag")
    assert (s.get("ovh.endpoint"), s.sources["ovh.endpoint"]) == ("ovh-us", "env")
    assert (s.get("rollout.lease_ttl"), s.sources["rollout.lease_ttl"]) == (60.0, str(path))
    # A flag given as None means "not given": the file's value stands.
    assert (s.get("ovh.rate_limit"), s.sources["ovh.rate_limit"]) == (30.0, str(path))
    assert (s.get("reboot.timeout"), s.sources["reboot.timeout"]) == (900.0, "default")
    assert s.config_file == str(path)


@pytest.mark.parametrize(
    ("env", "name", "value"),
    [
        ({"FLEET_ROLLOUT_CONCURRENCY": "3"}, "rollout.concurrency", 3),
        ({"FLEET_OVH_RATE_LIMIT": "12.5"}, "ovh.rate_limit", 12.5),
        ({"FLEET_SSH_TRUST_ON_FIRST_USE": "no"}, "ssh.trust_on_first_use", False),
        ({"FLEET_SSH_TRUST_ON_FIRST_USE": "On"}, "ssh.trust_on_first_use", True),
        ({"FLEET_SSH_TRUST_ON_FIRST_USE": "0"}, "ssh.trust_on_first_use", False),
        ({"FLEET_INVENTORY": "a.yaml:b"}, "inventory", "a.yaml:b"),
    ],
)
def test_env_values_are_coerced(home: Path, env: dict[str, str], name: str, value: object) -> None:
    s = config.load({}, env)
    assert s.get(name) == value
    assert type(s.get(name)) is type(value)
    assert s.sources[name] == "env"


@pytest.mark.parametrize(
    ("env", "origin", "name", "type_name"),
    [
        (
            {"FLEET_ROLLOUT_CONCURRENCY": "many"},
            "FLEET_ROLLOUT_CONCURRENCY",
            "rollout.concurrency",
            "int",
        ),
        (
            {"FLEET_ROLLOUT_CONCURRENCY": "2.5"},
            "FLEET_ROLLOUT_CONCURRENCY",
            "rollout.concurrency",
            "int",
        ),
        ({"FLEET_OVH_RATE_LIMIT": "fast"}, "FLEET_OVH_RATE_LIMIT", "ovh.rate_limit", "float"),
        (
            {"FLEET_SSH_TRUST_ON_FIRST_USE": "maybe"},
            "FLEET_SSH_TRUST_ON_FIRST_USE",
            "ssh.trust_on_first_use",
            "bool",
        ),
    ],
)
def test_bad_env_value_names_variable_setting_and_type(
    home: Path, env: dict[str, str], origin: str, name: str, type_name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config.load({}, env)
    text = str(info.value)
    assert text.startswith(f"{origin}: {name} must be {type_name}")
    assert repr(next(iter(env.values()))) in text


def test_bad_flag_value(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"flag: rollout\.concurrency must be int"):
        config.load({"rollout.concurrency": "x"}, {})


def test_unknown_flag_name(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'rollout\.speed'"):
        config.load({"rollout.speed": 3}, {})


def test_bad_file_value_names_the_file(home: Path, tmp_path: Path) -> None:
    path = toml(tmp_path / "f.toml", "[ssh]\ntrust_on_first_use = 1\n")
    with pytest.raises(ConfigError) as info:
        config.load({}, {}, str(path))
    assert str(info.value).startswith(f"{path}: ssh.trust_on_first_use must be bool")


@pytest.mark.parametrize(
    "text",
    [
        'inventory = ["a.yaml", "b.yaml"]\n',
        "[rollout]\nconcurrency = 2.5\n",
        "[rollout]\nconcurrency = true\n",
        "[ovh]\nrate_limit = false\n",
    ],
)
def test_wrong_toml_type_is_refused(home: Path, tmp_path: Path, text: str) -> None:
    path = toml(tmp_path / "f.toml", text)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        config.load({}, {}, str(path))


def test_integer_in_toml_is_a_valid_float(home: Path, tmp_path: Path) -> None:
    path = toml(tmp_path / "f.toml", "[ovh]\nrate_limit = 30\n")
    value = config.load({}, {}, str(path)).get("ovh.rate_limit")
    assert (value, type(value)) == (30.0, float)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 'blue'\n", "colour"),
        ("[ovh]\nendpont = 'ovh-eu'\n", "ovh.endpont"),
        ("[rollout.extra]\nx = 1\n", "rollout.extra.x"),
        ("ovh = 'ovh-eu'\n", "ovh"),
    ],
)
def test_unknown_key_in_file_is_refused_with_file_named(
    home: Path, tmp_path: Path, text: str, key: str
) -> None:
    path = toml(tmp_path / "f.toml", text)
    with pytest.raises(ConfigError) as info:
        config.load({}, {}, str(path))
    assert str(info.value) == f"{path}: unknown setting {key!r}"
    assert info.value.hint is not None
    assert "ovh.endpoint" in info.value.hint


def test_toml_syntax_error_names_the_file(home: Path, tmp_path: Path) -> None:
    path = toml(tmp_path / "f.toml", "[ovh\nendpoint = 1\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: ")):
        config.load({}, {}, str(path))


def test_missing_explicit_file_is_an_error(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="cannot read"):
        config.load({}, {}, str(path))
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        config.load({}, {"FLEET_CONFIG": str(path)})


def test_secrets_are_masked_in_show(home: Path, tmp_path: Path) -> None:
    path = toml(tmp_path / "f.toml", "[ovh]\ncontrol_token = 's3cr3t-token'\n")
    s = config.load({}, {}, str(path))
    assert s.get("ovh.control_token") == "s3cr3t-token"
    rows = {name: (value, source) for name, value, source in s.show()}
    assert rows["ovh.control_token"] == ("********", str(path))
    assert all("s3cr3t" not in value for value, _ in rows.values())
    assert rows["ovh.endpoint"] == ("ovh-eu", "default")
    assert [r[0] for r in s.show()] == [setting.name for setting in config.SETTINGS]


def test_secret_from_env_is_masked_and_unset_secret_is_empty(home: Path) -> None:
    rows = {n: v for n, v, _ in config.load({}, {"FLEET_OVH_CONTROL_TOKEN": "tok"}).show()}
    assert rows["ovh.control_token"] == "********"
    rows = {n: v for n, v, _ in config.load({}, {}).show()}
    assert rows["ovh.control_token"] == ""
    assert rows["ovh.config_file"] == ""


def test_env_names() -> None:
    names = {s.name: s.env for s in config.SETTINGS}
    assert names["ovh.endpoint_url"] == "FLEET_OVH_ENDPOINT_URL"
    assert names["state"] == "FLEET_STATE"


def test_paths(home: Path) -> None:
    s = config.load({"inventory": "~/inv:/etc/fleet/hosts.yaml:", "store": "/x/db"}, {})
    assert s.inventory_paths == [home / "inv", Path("/etc/fleet/hosts.yaml")]
    assert s.store_url == "/x/db"
    assert s.path("ssh.key_file") is None
    assert config.load({"ssh.key_file": "~/k"}, {}).path("ssh.key_file") == home / "k"


# --- where fleet.toml is found ------------------------------------------------------------------


def layered(home: Path, tmp_path: Path) -> dict[str, Path]:
    """A fleet.toml at every place of the lookup, each naming itself in ovh.endpoint."""
    state = tmp_path / "state"
    places = {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "env.toml",
        "cwd": Path.cwd() / "fleet.toml",
        "home": home / ".config" / "fleet" / "fleet.toml",
        "sandbox": state / "sandbox" / "fleet.toml",
    }
    for label, path in places.items():
        toml(path, f"[ovh]\nendpoint = '{label}'\n")
    return places


def test_lookup_order(home: Path, tmp_path: Path) -> None:
    places = layered(home, tmp_path)
    env = {"FLEET_CONFIG": str(places["env"]), "FLEET_STATE": str(tmp_path / "state")}

    def found(explicit: str | None = None) -> str:
        s = config.load({}, env, explicit)
        label = str(s.get("ovh.endpoint"))
        # The working directory's file is named as found: relative.
        assert s.config_file == ("fleet.toml" if label == "cwd" else str(places[label]))
        return label

    assert found(str(places["explicit"])) == "explicit"
    assert found() == "env"
    del env["FLEET_CONFIG"]
    assert found() == "cwd"
    places["cwd"].unlink()
    assert found() == "home"
    places["home"].unlink()
    assert found() == "sandbox"
    places["sandbox"].unlink()
    assert config.load({}, env).config_file is None


def test_sandbox_file_follows_the_state_flag(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-state"
    toml(other / "sandbox" / "fleet.toml", "[ovh]\nendpoint = 'other'\n")
    s = config.load({"state": str(other)}, {"FLEET_STATE": str(tmp_path / "nowhere")})
    assert s.get("ovh.endpoint") == "other"
    assert s.state_dir == other
    assert s.sources["state"] == "flag"


def test_sandbox_file_under_the_default_state(home: Path) -> None:
    toml(home / ".local" / "state" / "fleet" / "sandbox" / "fleet.toml", "[ovh]\nendpoint = 'sb'\n")
    assert config.load({}, {}).get("ovh.endpoint") == "sb"


def test_state_from_env_is_reported_as_env(home: Path, tmp_path: Path) -> None:
    s = config.load({}, {"FLEET_STATE": str(tmp_path / "st")})
    assert s.state_dir == tmp_path / "st"
    assert s.sources["state"] == "env"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FLEET_ROLLOUT_CONCURRENCY": "0"},
            "rollout.concurrency must be a finite number at least 1",
        ),
        ({"FLEET_ROLLOUT_CONCURRENCY": "-3"}, "at least 1, got -3"),
        ({"FLEET_REBOOT_TIMEOUT": "nan"}, "reboot.timeout must be a finite number above 0"),
        ({"FLEET_REBOOT_TIMEOUT": "inf"}, "got inf"),
        ({"FLEET_REBOOT_TIMEOUT": "0"}, "above 0, got 0.0"),
        ({"FLEET_OVH_RATE_LIMIT": "-inf"}, "ovh.rate_limit"),
        ({"FLEET_OVH_RETRY_WAIT": "-1"}, "ovh.retry_wait must be a finite number at least 0"),
        ({"FLEET_ROLLOUT_INFRA_RETRIES": "-1"}, "rollout.infra_retries"),
        ({"FLEET_ROLLOUT_LEASE_TTL": "1e400"}, "got inf"),  # float() reads it as infinity
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_source(
    home: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        config.load({}, env)
    assert info.value.message.startswith(next(iter(env)) + ": ")
    assert info.value.exit_code == 3


def test_numbers_out_of_range_in_a_file_name_the_file(home: Path, tmp_path: Path) -> None:
    path = toml(tmp_path / "fleet.toml", "[rollout]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: rollout.concurrency")):
        config.load({}, {}, config_file=str(path))
    path = toml(tmp_path / "fleet.toml", "[reboot]\ntimeout = nan\n")
    with pytest.raises(ConfigError, match=r"reboot\.timeout must be a finite number"):
        config.load({}, {}, config_file=str(path))


def test_the_edges_of_the_ranges_are_accepted(home: Path) -> None:
    env = {
        "FLEET_ROLLOUT_CONCURRENCY": "1",
        "FLEET_OVH_RETRY_WAIT": "0",
        "FLEET_REBOOT_TIMEOUT": "0.1",
    }
    s = config.load({}, env)
    assert (s.get("rollout.concurrency"), s.get("ovh.retry_wait")) == (1, 0.0)
