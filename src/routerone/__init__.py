"""Router One: a self-hostable, OpenAI-compatible LLM router."""
from .app import create_app
from .settings import ProviderSettings, Settings, SettingsError, load_settings

__version__ = "0.1.0"
__all__ = ["create_app", "Settings", "ProviderSettings", "SettingsError", "load_settings", "__version__"]
