"""The networks the chapters train. One file per model family.

=======  ===============================================
mlp      multilayer perceptrons (``MLP``)
=======  ===============================================
"""

from .mlp import ACTIVATIONS, MLP

__all__ = ["ACTIVATIONS", "MLP"]
