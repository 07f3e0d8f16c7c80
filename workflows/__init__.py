"""Deterministic workflow code: the COM and SOM roles (and the benchmark's bare shape)."""
