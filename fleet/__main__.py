"""``python -m fleet``: the same as the ``fleet`` console script."""

from fleet.launch import main

main()
