"""Benchmarks and evaluation tools (``esitieto bench ...``, ``eval-spoken``, ``eval-fuzzy``).

Nothing in the product imports this package; it measures the product from outside.
"""
