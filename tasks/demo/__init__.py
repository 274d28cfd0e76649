"""Development tooling, kept out of the images: the demo (`make demo`), the local Airflow UI
(`make ui`), the digits demo data and the local S3 endpoint (moto's server) both use."""
