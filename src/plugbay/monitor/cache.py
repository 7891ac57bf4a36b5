"""A small LRU cache that counts its hits and misses in a plugin's metrics.

    from plugbay.monitor.cache import MeteredCache

    async def initialize(self, context):
        self.answers = MeteredCache(context.metrics, "answers", maxsize=512)

    def lookup(self, key):
        value = self.answers.get(key)
        if value is None:
            value = self.answers[key] = compute(key)
        return value

Each lookup adds one to ``cache_hits`` or ``cache_misses`` (label ``cache``), so
``plugbay metrics`` and ``plugbay top`` show the hit rate beside the plugin's
other figures. It needs only the standard library and ``context.metrics``, so it
works the same in a worker process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar, overload

from plugbay.api import MetricsCollector

__all__ = ["MeteredCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class MeteredCache(Generic[K, V]):
    """A bounded mapping (least recently used out first) counting hits and misses."""

    def __init__(
        self, metrics: MetricsCollector, name: str = "default", maxsize: int = 1024
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        self._data: OrderedDict[K, V] = OrderedDict()
        self._metrics = metrics
        self.name = name
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            self._metrics.increment("cache_misses", cache=self.name)
            return default
        self._data.move_to_end(key)
        self.hits += 1
        self._metrics.increment("cache_hits", cache=self.name)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
