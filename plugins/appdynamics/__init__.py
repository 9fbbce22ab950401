"""AppDynamics Analytics Events API: typed event schemas, batch publish and ADQL queries.

This package holds the framework-independent parts so far: the ADQL grammar, parser and semantic pass
(``adql/``), schema and event validation (``schema_types``), query parameters (``timeparams``) and the response
shapes (``results``). The plugin declaration that wires them into HTTP comes with the redesigned core.
"""
