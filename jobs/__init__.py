"""KPIdelivery MLOps jobs: Spark transformations (pure) and thin entrypoints that do the I/O."""
