"""The statistics of a multi-seed study and the verdicts on its declared claims.

:mod:`~gansn.study.stats` (CIs, Welch's test, Holm's correction, power, published
statistics) and :mod:`~gansn.study.verdicts` (a preset's claims tested over seeds) know
nothing of run directories or plots: the sweep report (:mod:`gansn.report`) and
``scripts/verdicts.py`` call them on per-run scores.
"""
