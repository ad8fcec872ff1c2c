from sensors.manifest import manifest_sensor

__all__ = ["manifest_sensor"]
