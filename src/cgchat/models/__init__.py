"""Model roles, one module each, loaded lazily and wrapped once per process."""
