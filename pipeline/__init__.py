"""ordersync's pure core: records, normalization, validation, batching, isolation, retry policy,
the Sendcloud client and the state store. Nothing here imports Celery (tasks/ wires it)."""
