"""Training and evaluation, framework-neutral: the loop over each framework's trainer
(`frameworks/<fw>/training.py`), checkpoints and resume, `--compare` runs, tables, plots and evaluation."""
