"""Kie's triggers. A triggerer imports this package before it builds its first Kie trigger, which is
when the triggerer's heap is frozen (see :mod:`.heap`)."""

from airflow_provider_kie.triggers.heap import freeze_triggerer_heap

freeze_triggerer_heap()
