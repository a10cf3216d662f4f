"""What srgan-mlx reads and writes: image files and pictures of every mode, labelled image rows, weights files and
the models a name or path stands for, and the layout of a training run's folder."""
