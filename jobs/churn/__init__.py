"""Workflow 2, churn (SPEC.md), one folder per lifecycle step, in the order the data goes through them.

- `contract`: what the data and a model are: the five source files, the features, the training spec and its
  split. Every other step reads these definitions; none redefines them.
- `ingest`: the source files validated before load into `raw` (rules, quarantine, GX gate).
- `features`: THE feature build at a snapshot T, and the versioned feature table every step reads.
- `training`: Spark MLlib pipelines, a light search on validation data, one test evaluation, MLflow.
- `validation`: promotion as code: the challenger against the champion on the same data.
- `deployment`: the model registry (aliases), the JVM-free scorer, batch scoring into `prod.churn_scores`.
- `serving`: the checks and model look-ups behind the app (and the API).
- `monitoring`: drift of the current snapshot against the model's data, the data watchdog, read-only views.
- `simulate`: the generator of source files with a known truth.

Each step has the same three parts: pure transformations and decisions (DataFrame in, DataFrame out), ONE
`io` module that alone touches PostgreSQL, Delta, MLflow, S3 or files, and a thin `__main__`
(``python -m jobs.churn.<step>``) whose typed options are checked before any Spark work.
"""
