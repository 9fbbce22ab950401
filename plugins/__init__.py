"""Built-in vendor APIs, one package per vendor; each is an ordinary Event Gateway plugin."""
