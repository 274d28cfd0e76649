"""Pipeline logic of Nightly Retrain: one module per step, importable without Airflow."""
