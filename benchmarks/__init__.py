"""Benchmarks for ipysession: real kernels, every tool in one run (issue 6), the store (issue 2).

Run ``make bench`` (``python -m benchmarks``; ``--smoke`` for tiny sizes and 2 trials,
``--update-docs`` to rewrite ``docs/performance.md`` and ``docs/autosave-scaling.png``). Results go
to ``benchmarks/results/`` (git-ignored) as JSON and Markdown. Benchmarks report timings; they never
assert them.

``--gigabyte-mb N`` adds the gigabyte workload (issue 15) with N MB of data; every run also
measures the physical limits of a restore on the machine (file read cold and warm, AES-GCM
decryption, memcpy) in the same run.

Modules: :mod:`benchmarks.kernel` (kernels through jupyter_client, timing on both ends),
:mod:`benchmarks.workloads`, :mod:`benchmarks.tools` (one adapter per tool),
:mod:`benchmarks.runner` (protocol, trials, medians), :mod:`benchmarks.report` (tables, targets,
docs, plot), :mod:`benchmarks.store_bench` (session store micro-benchmark),
:mod:`benchmarks.physical` (the physical limits).
"""
