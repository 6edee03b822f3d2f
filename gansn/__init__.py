"""gansn: train GANs in PyTorch and measure what spectral normalization does."""

from gansn.threads import set_wait_policy as _set_wait_policy

# first thing, before any gansn module imports torch: libgomp reads OMP_WAIT_POLICY once,
# when torch loads it, and spinning OpenMP workers cost 7-9x on a shared CPU (gansn/threads.py)
_set_wait_policy()

__version__ = "0.1.0"
