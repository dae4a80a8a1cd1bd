"""Fleet configuration: pydantic models, the YAML loader and the throughput derivation."""

from planner.config.loader import DEFAULT_CONFIG, ConfigError, config_hash, load_config
from planner.config.models import FleetConfig

__all__ = ["DEFAULT_CONFIG", "ConfigError", "FleetConfig", "config_hash", "load_config"]
