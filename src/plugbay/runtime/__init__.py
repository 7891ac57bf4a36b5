"""The running host: lifecycle, routing, swaps, events, services, the store and the watcher.

Applications use :class:`plugbay.Host`; the rest of this part is how it works.
"""
