"""The ``cadence`` command line: thin layers over the public API."""
