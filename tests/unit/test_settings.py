"""The one settings object: defaults < file < ROUTERONE_* env < explicit overrides; secrets by
reference; every error names the offending key."""
from __future__ import annotations

import dataclasses
import re

import pytest

from routerone.settings import ProviderSettings, Settings, SettingsError, load_settings


def test_defaults_without_env_or_file():
    s = load_settings(env={})
    assert s == Settings()
    assert s.max_body_bytes == 20 * 1024 * 1024 and s.max_retries == 2 and s.providers == {}


def test_env_values_are_coerced_to_the_field_types():
    s = load_settings(env={"ROUTERONE_PORT": "9000", "ROUTERONE_FIRST_BYTE_TIMEOUT_S": "2.5",
                           "ROUTERONE_LOG_CONTENT": "yes", "ROUTERONE_ADMIN_KEY": "sk-admin-01234567890",
                           "ROUTERONE_DEFAULT_RPM": "60", "ROUTERONE_MAX_BODY_BYTES": "1024"})
    assert (s.port, s.first_byte_timeout_s, s.log_content, s.admin_key, s.default_rpm, s.max_body_bytes) == \
        (9000, 2.5, True, "sk-admin-01234567890", 60, 1024)


def test_precedence_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "r1.toml"
    cfg.write_text('port = 7000\nhost = "0.0.0.0"\nmax_retries = 5\n')
    s = load_settings(str(cfg), env={"ROUTERONE_PORT": "7100"})
    assert (s.port, s.host, s.max_retries) == (7100, "0.0.0.0", 5)
    s = load_settings(str(cfg), env={"ROUTERONE_PORT": "7100"}, port=7200, host=None)
    assert (s.port, s.host) == (7200, "0.0.0.0")         # None overrides are ignored


def test_config_path_from_env(tmp_path):
    cfg = tmp_path / "r1.yaml"
    cfg.write_text("routing_strategy: cost\nproviders:\n  openai:\n    base_url: http://127.0.0.1:9/v1\n    rpm: 60\n")
    s = load_settings(env={"ROUTERONE_CONFIG": str(cfg)})
    assert s.routing_strategy == "cost"
    assert s.providers["openai"] == ProviderSettings(base_url="http://127.0.0.1:9/v1", rpm=60)


def test_secrets_by_env_and_file_reference(tmp_path):
    secret_file = tmp_path / "key.txt"
    secret_file.write_text("sk-from-file\n")
    cfg = tmp_path / "r1.toml"
    cfg.write_text(f'admin_key = {{ "$env" = "MY_ADMIN" }}\n'
                   f'[providers.anthropic]\napi_key = {{ "$file" = "{secret_file}" }}\n')
    s = load_settings(str(cfg), env={"MY_ADMIN": "sk-from-env-0123456789"})
    assert s.admin_key == "sk-from-env-0123456789"
    assert s.providers["anthropic"].api_key == "sk-from-file"


def test_provider_keys_from_the_usual_env_vars(tmp_path):
    s = load_settings(env={"OPENAI_API_KEY": "sk-o", "GEMINI_API_KEY": "g"})
    assert s.providers["openai"].api_key == "sk-o" and s.providers["gemini"].api_key == "g"
    cfg = tmp_path / "r1.toml"
    cfg.write_text('[providers.openai]\nbase_url = "http://x/v1"\n')
    s = load_settings(str(cfg), env={"OPENAI_API_KEY": "sk-o"})
    assert s.providers["openai"] == ProviderSettings(api_key="sk-o", base_url="http://x/v1")


@pytest.mark.parametrize("env, key", [
    ({"ROUTERONE_PORT": "eighty"}, "ROUTERONE_PORT"),
    ({"ROUTERONE_PORT": "0"}, "port"),
    ({"ROUTERONE_MAX_BODY_BYTES": "0"}, "max_body_bytes"),
    ({"ROUTERONE_WORKERS": "1.5"}, "ROUTERONE_WORKERS"),
    # other scripts' digits: int() reads them ("\uff18\uff10\uff18\uff10" = 8080, "\u0663" = 3)
    ({"ROUTERONE_PORT": "\uff18\uff10\uff18\uff10"}, "ROUTERONE_PORT"),
    ({"ROUTERONE_WORKERS": "\u0663"}, "ROUTERONE_WORKERS"),
    ({"ROUTERONE_IDLE_TIMEOUT_S": "\u0661\u0662\u0660"}, "ROUTERONE_IDLE_TIMEOUT_S"),
    ({"ROUTERONE_LOG_CONTENT": "maybe"}, "ROUTERONE_LOG_CONTENT"),
    ({"ROUTERONE_LIMITER": "postgres"}, "limiter"),
    ({"ROUTERONE_ROUTING_STRATEGY": "random"}, "routing_strategy"),
    ({"ROUTERONE_DEMO": "yes"}, "demo"),
    ({"ROUTERONE_CONFIG": "/nonexistent/r1.toml"}, "/nonexistent/r1.toml"),
])
def test_errors_name_the_offending_key(env, key):
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings(env=env)


@pytest.mark.parametrize("text, key", [
    ("prot = 1\n", "prot"),
    ("port = 'x'\n", "port"),
    ("[providers.openai]\napi_kye = 'x'\n", "providers.openai.api_kye"),
    ("[providers.openai]\nrpm = 'fast'\n", "providers.openai.rpm"),
    ("providers = 3\n", "providers"),
    ("admin_key = { '$env' = 'NOT_SET_ANYWHERE' }\n", "admin_key"),
    ("[providers.openai]\napi_key = { '$file' = '/nonexistent/secret' }\n", "providers.openai.api_key"),
    ("port = \n", "r1.toml"),
])
def test_file_errors_name_the_offending_key(tmp_path, text, key):
    cfg = tmp_path / "r1.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings(str(cfg), env={})


def test_yaml_file_must_be_a_mapping(tmp_path):
    cfg = tmp_path / "r1.yml"
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="r1.yml"):
        load_settings(str(cfg), env={})


def test_settings_are_frozen_and_replace_makes_a_copy():
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    t = s.replace(port=1, max_retries=0)
    assert (t.port, t.max_retries, s.port, s.max_retries) == (1, 0, 8080, 2)


@pytest.mark.parametrize("text, culprit", [
    ("[providers.box]\nbase_url = 'http://x/v1'\nmodels = 'a,b'\nheaders = 3\n", "providers.box.headers"),
    ("[providers.box]\nbase_url = 'http://x/v1'\nmodels = [1, 2]\n", "providers.box.models"),
    ("[providers.box]\nbase_url = 'http://x/v1'\nenabled = 'maybe'\n", "providers.box.enabled"),
    ("[providers.box]\nbase_url = 'http://x/v1'\nfirst_byte_timeout_s = 0\n", "providers.box.first_byte_timeout_s"),
    ("[providers.box]\nbase_url = 'http://x/v1'\noutput_usd_per_mtok = '-1'\n", "providers.box.output_usd_per_mtok"),
    ("[providers.box]\nbase_url = 'ftp://x/v1'\n", "providers.box.base_url"),
    ("['providers'.'a/b']\nbase_url = 'http://x/v1'\n", "providers.a/b"),
    ("willingness_to_pay = -0.1\n", "willingness_to_pay"),
    ("first_byte_timeout_s = nan\n", "first_byte_timeout_s"),
    ("workers = 0\n", "workers"),
    ("retry_budget_tokens = 1001\n", "retry_budget_tokens"),
    ("retry_budget_token_ratio = 0\n", "retry_budget_token_ratio"),
])
def test_provider_and_range_errors_name_the_key(tmp_path, text, culprit):
    cfg = tmp_path / "r1.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(culprit)):
        load_settings(str(cfg), env={})


def test_provider_lists_tables_and_operator_names(tmp_path):
    cfg = tmp_path / "r1.toml"
    cfg.write_text("[providers.gpubox]\nbase_url = 'http://gpu:8000/v1'\nmodels = ['llama-*', 'qwen']\n"
                   "headers = { x-team = 'ml' }\nenabled = false\ninput_usd_per_mtok = 0.5\n")
    p = load_settings(str(cfg), env={}).providers["gpubox"]
    assert (p.models, dict(p.headers), p.enabled, p.input_usd_per_mtok) == (("llama-*", "qwen"), {"x-team": "ml"},
                                                                           False, "0.5")


def test_responses_retention_days_defaults_to_30_and_0_keeps_until_deleted(tmp_path):
    """Stored /v1/responses responses (prompts included) were kept until DELETE: now 30 days, as
    OpenAI's default; 0 keeps them until deleted; the purge runs every responses_purge_interval_s."""
    s = load_settings(env={})
    assert (s.responses_retention_days, s.responses_purge_interval_s) == (30, 3600.0)
    s = load_settings(env={"ROUTERONE_RESPONSES_RETENTION_DAYS": "0", "ROUTERONE_RESPONSES_PURGE_INTERVAL_S": "60"})
    assert (s.responses_retention_days, s.responses_purge_interval_s) == (0, 60.0)
    cfg = tmp_path / "r1.toml"
    cfg.write_text("responses_retention_days = 7\n")
    assert load_settings(str(cfg), env={}).responses_retention_days == 7


@pytest.mark.parametrize("env, key", [
    ({"ROUTERONE_RESPONSES_RETENTION_DAYS": "-1"}, "responses_retention_days: must be between 0 and 36500"),
    ({"ROUTERONE_RESPONSES_RETENTION_DAYS": "1.5"}, "ROUTERONE_RESPONSES_RETENTION_DAYS"),
    ({"ROUTERONE_RESPONSES_RETENTION_DAYS": "99999999"}, "responses_retention_days"),
    ({"ROUTERONE_RESPONSES_PURGE_INTERVAL_S": "0"}, "responses_purge_interval_s"),
    ({"ROUTERONE_RESPONSES_PURGE_INTERVAL_S": "nan"}, "ROUTERONE_RESPONSES_PURGE_INTERVAL_S"),
])
def test_responses_retention_settings_are_range_checked(env, key):
    with pytest.raises(SettingsError, match=key):
        load_settings(env=env)


def _alias_bomb(levels: int) -> str:
    """A YAML "billion laughs": 9 strings, then `levels` lists of 9 aliases to the one before."""
    defs, prev = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'], "l0"
    for i in range(1, levels):
        defs.append(f"&l{i} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = f"l{i}"
    return "port: [" + ", ".join(defs) + "]\n"


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    """A 300-byte YAML file whose aliases stand for 9**7 values became a 39 MB error line after ~1 s
    (9**9: a CLI or `serve` busy for minutes, using GBs, before its first line)."""
    cfg = tmp_path / "r1.yaml"
    cfg.write_text(_alias_bomb(7))
    with pytest.raises(SettingsError) as exc:
        load_settings(str(cfg), env={})
    said = str(exc.value)
    assert "r1.yaml" in said and "aliases" in said and len(said) < 300, said[:300]


def test_yaml_aliases_that_repeat_a_few_values_still_load(tmp_path):
    cfg = tmp_path / "r1.yaml"
    cfg.write_text("providers:\n  box: &box\n    base_url: http://127.0.0.1:9/v1\n    models: &m [a, b, c]\n"
                   "  box2:\n    <<: *box\n    base_url: http://127.0.0.1:10/v1\n    models: *m\n")
    s = load_settings(str(cfg), env={})
    assert s.providers["box2"].models == ("a", "b", "c") and s.providers["box2"].base_url == "http://127.0.0.1:10/v1"


def test_a_value_of_the_wrong_type_is_shown_shortened(tmp_path):
    """`port = "<1 MB>"` was a 1 MB error line."""
    cfg = tmp_path / "r1.toml"
    cfg.write_text(f'port = "{"9x" * 500_000}"\n')
    with pytest.raises(SettingsError, match="port: expected int") as exc:
        load_settings(str(cfg), env={})
    assert len(str(exc.value)) < 300


@pytest.mark.parametrize("how", ["file", "inline", "env"])
def test_a_provider_key_with_a_line_break_is_refused_without_printing_it(tmp_path, how):
    """A two-line `$file` secret (or "\\n" in the value, or in OPENAI_API_KEY) reached the upstream
    request's Authorization header: `routerone models` ended in aiohttp's "header injection"
    traceback. Now one line naming the setting, the key not shown."""
    (tmp_path / "key.txt").write_text("sk-secret-AAAA\nsk-secret-BBBB\n")
    value = {"file": f'{{ "$file" = "{tmp_path / "key.txt"}" }}', "inline": '"sk-secret-AAAA\\r\\nX-Evil: 1"'}
    cfg = tmp_path / "r1.toml"
    name = "openai" if how == "env" else "box"
    cfg.write_text(f'[providers.{name}]\nbase_url = "http://127.0.0.1:9/v1"\n'
                   + (f"api_key = {value[how]}\n" if how != "env" else ""))
    env = {"OPENAI_API_KEY": "sk-secret-AAAA\nsk-secret-BBBB"} if how == "env" else {}
    with pytest.raises(SettingsError, match=f"providers\\.{name}\\.api_key.*line break") as exc:
        load_settings(str(cfg), env=env)
    assert "sk-secret" not in str(exc.value)
