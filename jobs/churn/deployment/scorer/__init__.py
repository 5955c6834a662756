"""The JVM-free churn scorer: the fitted Spark pipeline as plain arrays, scored and explained with numpy/SHAP.

Why: a Spark pyfunc needs a JVM (~22 s cold load, ~220 ms per row) and returns no probability, so the app,
the API, promotion and the latency benchmark score with this, while batch scoring keeps the Spark pipeline.
- `export`: at training time, the fitted stages read through py4j into a JSON description (imputer
  medians, category labels in index order, the model, the train rows per category);
- `score`: `ChurnScorer` replicates `training.pipeline.prepare` and every stage exactly (parity <= 1e-6
  against Spark is a test) and explains with SHAP;
- `spark_cast`: Spark's casts of a pandas cell (to double, to string) in plain Python;
- `pyfunc`: the scorer as an MLflow pyfunc (probability, SHAP values on request).
"""
