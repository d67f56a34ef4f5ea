"""Models: plain ``nn.Module`` builders registered by name. Importing registers them all.

A registered model is a dataclass (its config section) with ``build(input_shape, n_out)``. Built
modules provide ``unit_layers()`` (the unit map, ``plasticlab.units``), ``features(x)``
(penultimate features) and ``head_slices()`` (output layer, for head resets).
"""

from plasticlab.models import cnn, mlp, resnet, t5, vgg  # noqa: F401
