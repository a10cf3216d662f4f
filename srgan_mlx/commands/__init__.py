"""Thin click wrappers, one module per ``srgan-mlx`` command, each exposing ``command``."""
