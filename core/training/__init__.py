"""Training: typed config, presets, estimator, trainer builder, worker process, events, run folders."""
