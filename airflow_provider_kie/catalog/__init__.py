"""The catalog's data: one JSON entry per Kie Market model, read by :mod:`airflow_provider_kie.models`.

``python -m airflow_provider_kie.catalog refresh`` reads Kie's current pages and writes entries in the
same format (see :mod:`.__main__`).
"""
