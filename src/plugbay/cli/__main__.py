"""``python -m plugbay.cli``: the same as the ``plugbay`` command."""

from plugbay.cli._entry import main

main()
