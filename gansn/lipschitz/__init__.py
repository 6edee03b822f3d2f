"""Where the discriminator's Lipschitz constant actually is, for any normalization.

Per-layer norms (``sigma_matrix``, ``sigma_operator``, spectral norm's divisor, normalization
gains), whole-D upper bounds and empirical lower bounds; docs/lipschitz.md explains each
number and how the bounds are computed.  It measures D's weights and maps, not samples, so it
sits beside ``gansn.metrics`` on ``gansn.nn``; training, the CLI and the report use it.

Modules, one idea each: :mod:`~gansn.lipschitz.sn` (the only reader of torch's private
spectral-norm state), :mod:`~gansn.lipschitz.rules` (constants of parameter-free layers and
container rules), :mod:`~gansn.lipschitz.operators` (layers as linear maps and their norms),
:mod:`~gansn.lipschitz.tracker` (:class:`LipschitzTracker`: per-layer norms, whole-D upper
bounds), :mod:`~gansn.lipschitz.lower` (empirical lower bounds),
:mod:`~gansn.lipschitz.summary` (:func:`lipschitz_report`, :func:`format_table`) and
:mod:`~gansn.lipschitz.spectra` (singular-value spectra and their plot).  How a norm's layers
enter the bound is declared by the norm itself (``gansn.nn.norms.LipschitzRule``).
"""

from __future__ import annotations

from gansn.lipschitz.operators import (
    effective_weight,
    linear_map,
    norm_gains,
    power_iteration,
    weight_matrix,
)
from gansn.lipschitz.rules import (
    LipschitzError,
    layer_names,
    readable_name,
    register_container,
    register_leaf,
)
from gansn.lipschitz.spectra import (
    circular_conv_singular_values,
    plot_singular_value_spectra,
    singular_value_spectra,
)
from gansn.lipschitz.summary import format_table, lipschitz_report
from gansn.lipschitz.tracker import BoundMode, LipschitzTracker

__all__ = [
    "BoundMode",
    "LipschitzError",
    "LipschitzTracker",
    "circular_conv_singular_values",
    "effective_weight",
    "format_table",
    "layer_names",
    "linear_map",
    "lipschitz_report",
    "norm_gains",
    "plot_singular_value_spectra",
    "power_iteration",
    "readable_name",
    "register_container",
    "register_leaf",
    "singular_value_spectra",
    "weight_matrix",
]
