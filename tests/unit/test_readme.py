"""The README cannot drift: its configuration reference is what the generator prints, its
bring-your-own-models config loads, its `keys create --models` example works in the demo, and the
LICENSE matches pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from routerone.catalog import load_catalog
from routerone.settings import load_settings
from routerone.settings_reference import END, START, reference_markdown

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_configuration_reference_equals_the_generator():
    inside = README.split(START, 1)[1].split(END, 1)[0]
    assert inside.strip() == reference_markdown().strip(), \
        "README reference is stale: run `python -m routerone.settings_reference --write README.md`"


def test_every_setting_is_in_the_reference():
    from dataclasses import fields

    from routerone.settings import ProviderSettings, Settings
    table = README.split(START, 1)[1]
    for f in [*fields(Settings), *fields(ProviderSettings)]:
        assert f"| `{f.name}` |" in table, f.name


def test_bring_your_own_models_config_loads(tmp_path):
    section = README.split("### Bring your own models", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    cfg = tmp_path / "router.toml"
    cfg.write_text(block)
    s = load_settings(str(cfg), env={"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"})
    assert {"gpubox", "laptop", "openai", "anthropic"} <= set(s.providers)
    cat = load_catalog(s)
    assert cat.providers["gpubox"].discover and cat.providers["laptop"].patterns == ("llama3*", "qwen2.5:7b")
    assert not cat.vendors["demo"].configured
    assert {"gpt-4o", "claude-sonnet-4-20250514"} <= {m.id for m in cat.available()}


def test_keys_create_example_names_models_the_demo_serves():
    line = next(ln for ln in README.splitlines() if "keys create" in ln and "--models" in ln)
    models = line.split("--models", 1)[1].split()[0].split(",")
    assert "auto" in models
    cat = load_catalog(load_settings(env={}))          # nothing configured: the demo
    assert cat.vendors["demo"].configured
    for m in models:
        if m != "auto":
            assert cat.resolve(m).provider == "demo", m


def test_license_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"]["text"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "CHANGELOG.md").exists()
