"""Fault-injection tests: real processes, real kills, real files."""
