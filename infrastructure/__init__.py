"""Infrastructure code: the native stack process manager and the Airflow REST client."""
