"""The public surface is what `__all__` says, and every name in it exists."""
import routerone


def test_public_names():
    assert sorted(routerone.__all__) == sorted(
        ["create_app", "Settings", "ProviderSettings", "SettingsError", "load_settings", "__version__"])
    for name in routerone.__all__:
        assert getattr(routerone, name) is not None
