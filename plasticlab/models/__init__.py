"""Models: plain ``nn.Module`` builders registered by name. Importing registers every module in the package.

A registered model is a dataclass (its config section) with ``build(input_shape, n_out)``. Built
modules provide ``unit_layers()`` (the unit map, ``plasticlab.units``), ``features(x)``
(penultimate features) and ``head_slices()`` (output layer, for head resets).
"""

from plasticlab.registry import import_all

import_all(__name__, __path__)
