"""Moved to :mod:`airflow_provider_kie.hints` (the engine's, not a trigger's); this name stays an alias
of that module."""

import sys
import warnings

from airflow_provider_kie import hints

warnings.warn(
    "airflow_provider_kie.triggers.hints moved to airflow_provider_kie.hints",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = hints
