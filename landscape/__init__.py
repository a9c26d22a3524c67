"""landscape: sharpness and loss-landscape analysis of PyTorch models."""

__version__ = "0.1.0"
