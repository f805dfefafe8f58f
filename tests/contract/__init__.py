"""Reusable test suites that every implementation of a protocol must pass.

``backend_suite.BackendContract``: connection backends (ours and third parties').
"""
