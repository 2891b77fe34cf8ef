from .plugin_wrapper import PluginBackbone  # noqa: F401
