"""Monitoring: per-plugin metrics now; health, alerts and logs build on this."""

from plugbay.monitor.metrics import CommandStats, PluginMetrics

__all__ = ["CommandStats", "PluginMetrics"]
