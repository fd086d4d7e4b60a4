"""Analytical chip model: technology, hardware, area, cost, power, performance. Pure numpy; no Optuna, Ray or Altair."""
