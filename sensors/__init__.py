from sensors.failures import batch_failure_sensor
from sensors.manifest import manifest_sensor

__all__ = ["batch_failure_sensor", "manifest_sensor"]
