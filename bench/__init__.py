"""Benchmarks: each script runs katadocker and a baseline in the same invocation and prints ratios."""
