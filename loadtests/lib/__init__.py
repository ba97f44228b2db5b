"""Shared pieces of the benchmarks: one aiohttp load generator, service launch helpers, stats, plots, report."""
