"""The built-in plugins, by module name (strings: the core never imports a plugin module directly).

Shared by the plugin manager (what to register) and the configuration (the default of `plugins.enabled`).
"""

#: Built-in vendor APIs: plugin name -> module.
BUILTIN_APIS: dict[str, str] = {
    "elastic_analytics": "plugins.elastic_analytics",
    "workplace_search": "plugins.workplace_search",
    "buildless": "plugins.buildless",
    "fluid_topics": "plugins.fluid_topics",
}
#: Built-in storage backends, always registered (each serves only the URL schemes it declares).
BUILTIN_BACKENDS: tuple[str, ...] = ("backends.memory", "backends.sqlite", "backends.elasticsearch",
                                     "backends.postgresql")
