"""The local instance's event log storage, by the name ``dagster.yaml`` gives it
(``media_assets/instance.py`` writes it; instances made before keep naming this module).

The class relies on Dagster internals, so it lives with the others in
``media_assets/dagster_compat.py``.
"""

from media_assets.dagster_compat import BatchingSqliteEventLogStorage

__all__ = ["BatchingSqliteEventLogStorage"]
