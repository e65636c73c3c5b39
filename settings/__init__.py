"""The one place that reads configuration: environment variables `CUTOUT_*` and `.env`."""

from settings.config import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
