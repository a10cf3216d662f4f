"""Training the paper's two stages: the settings (``TrainConfig``) and recipes, the data pipeline, the losses and
their table, the compiled steps, the loop, checkpoints, and the metrics log and its chart."""
