"""``python -m plugbay.cli``: the same as the ``plugbay`` command."""

from plugbay.cli.app import main

main()
