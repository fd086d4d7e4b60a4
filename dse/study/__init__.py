"""Studies: search spaces, objectives, Optuna runner on Ray, storage, results."""
