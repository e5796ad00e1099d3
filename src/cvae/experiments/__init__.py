"""Experiments over many runs: sweeps, comparisons with the papers, reproductions.

- :mod:`~cvae.experiments.sweep`: a grid of runs as resumable ``cvae train`` subprocesses.
- :mod:`~cvae.experiments.paper` and :mod:`~cvae.experiments.papers`: each paper as data, one
  module per paper (grid of runs, budgets, published numbers).
- :mod:`~cvae.experiments.results`: reading ``metrics.json``; one metric over several runs.
- :mod:`~cvae.experiments.verdict`: the one rule for "reproduced within noise".
- :mod:`~cvae.experiments.report`: the report model, rendered to Markdown and HTML.
- :mod:`~cvae.experiments.compare` (``cvae compare``) and :mod:`~cvae.experiments.reproduce`
  (``cvae reproduce``) build reports.
"""
