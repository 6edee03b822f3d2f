"""gansn: train GANs in PyTorch and measure what spectral normalization does."""

__version__ = "0.1.0"
