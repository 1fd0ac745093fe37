"""Experiment tracking on request: the tracking spec a study or a flag gives, the trackers' Ray
Tune callbacks (MLflow, W&B), TensorBoard event files."""
