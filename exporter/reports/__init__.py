"""PolicyReports and openreports Reports: the model, sources that watch them, the store and its metrics."""
