"""The ``chipreg`` command line."""
