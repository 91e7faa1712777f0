"""Benchmarks that run the same workloads on livedag and on Parsl side by side.

See bench/README.md. Nothing here is imported by livedag itself.
"""
