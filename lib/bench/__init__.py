"""Throughput benchmarks printed as ratios against in-run baselines (`make bench`)."""
