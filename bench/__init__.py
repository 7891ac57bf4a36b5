"""plugbay's benchmarks: ``make bench`` (``python -m bench [suite…]``).

Every figure is printed beside an anchor measured in the same run on the same
machine, and judged by the ratio, since absolute times on shared machines vary.
"""
