"""Multi-layer perceptron: flatten → [Linear → norm → activation] × len(hidden) → Linear head.

Initialisation is PyTorch's default for ``nn.Linear`` (weights and biases ~ U(±1/√fan_in)),
norm gains 1 and biases 0. This is the Liu & Mou MLP (784→256×4→C, LayerNorm, ReLU).
With ``activation: crelu`` each hidden layer still has ``hidden[i]`` units and outputs
2·hidden[i] values [relu(x), relu(−x)], so the next layer's fan-in doubles (widths are not halved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from plasticlab import registry
from plasticlab.config import bounds
from plasticlab.models.layers import CReLU, out_width, read_by, unit_activation
from plasticlab.units import Slice, UnitLayer, linear_slices, norm_slices

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "crelu": CReLU}
Activation = Literal["relu", "tanh", "leaky_relu", "gelu", "crelu"]


@registry.register(registry.MODELS, "mlp")
@dataclass
class MLPSpec:
    """Config of the ``mlp`` model."""

    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256, 256], metadata=bounds(ge=1, min_length=1))
    """Widths of the hidden layers."""
    norm: Literal["none", "layernorm", "batchnorm"] = "layernorm"
    activation: Activation = "relu"
    """``crelu``: [relu(x), relu(−x)] — each unit gives two outputs, the next layer's fan-in doubles."""

    @property
    def packable(self) -> bool:
        """K MLPs of one architecture train as one batched model (``MLP.stack``, packed sweeps);
        the batched model has no CReLU."""
        return self.activation != "crelu"

    def build(self, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        return MLP(math.prod(input_shape), self.hidden, n_out, norm=self.norm, activation=self.activation)


class MLP(nn.Module):
    """MLP classifier. Input (B, *) is flattened; output (B, n_out) logits."""

    def __init__(self, n_in: int, hidden: list[int], n_out: int, *, norm: str = "layernorm",
                 activation: str = "relu"):
        super().__init__()
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = n_in
        for h in hidden:
            self.linears.append(nn.Linear(width, h))
            self.norms.append({"none": nn.Identity, "layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}[norm](h)
                              if norm != "none" else nn.Identity())
            self.acts.append(ACTIVATIONS[activation]())
            width = h * out_width(self.acts[-1])
        self.head = nn.Linear(width, n_out)

    def features(self, x):
        """Penultimate features (B, hidden[-1]; 2·hidden[-1] with CReLU)."""
        h = x.flatten(1)
        for lin, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            h = act(norm(lin(h)))
        return h

    def forward(self, x):
        return self.head(self.features(x))

    def unit_layers(self) -> list[UnitLayer]:
        layers = []
        nxt = [*self.linears[1:], self.head]
        for i, (lin, norm, act) in enumerate(zip(self.linears, self.norms, self.acts, strict=True)):
            incoming: list[Slice] = linear_slices(lin, 0) + norm_slices(norm)
            layers.append(UnitLayer(f"hidden{i}", lin.out_features, incoming, read_by(act, linear_slices(nxt[i], 1)),
                                    unit_activation(act)))
        return layers

    def head_slices(self) -> list[Slice]:
        """The output layer's parameters with their init (for head-reset)."""
        return linear_slices(self.head, 0)

    @staticmethod
    def stack(models: list[MLP]):
        """The K ``models`` (one architecture) as one batched model whose weights they view."""
        from plasticlab.models.packed_mlp import PackedMLP

        return PackedMLP(models)
