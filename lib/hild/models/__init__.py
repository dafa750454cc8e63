"""The networks the chapters train. One file per model family.

==================  ===============================================
mlp                 multilayer perceptrons (``MLP``)
ntk                 layers and MLPs in the NTK parameterisation (``NTKLinear``, ``NTKMLP``, ``NTKRNN``)
attention           one softmax attention layer (``SoftmaxAttention``); attention entropy and its bound
sigma_reparam       σReparam: Ŵ = (γ/σ(W))W on any nn.Linear (``SigmaReparam``, ``sigma_reparam``)
two_layer           f(x) = s·aᵀσ(Wx + b) + c in NumPy, closed-form gradients, SGD/SAM (``TwoLayer``, ``train_sgd``)
representation      feature rank, active units, vanished/duplicated neurons (``feature_rank``, ...)
prefix_attention    f(X) = vᵀXᵀsoftmax(XWp), trainable p and/or W, exact saturated gradients (``PrefixAttention``)
patch_cnn           the two-layer patch CNN of Cutout/CutMix theory, smoothed leaky ReLU (``PatchCNN``)
resnet              ResNet-18 for 32x32 images (``ResNet18``), the data chapters' full-scale network
transformer         decoder-only transformer with pluggable position ids, greedy decoding (``DecoderTransformer``)
ensemble            collegial ensembles: m NTK MLPs as one model, F = Σf_j/√m (``CollegialEnsemble``)
hypernet            hypernetworks h(x, z) = g(z; f(x)), closed-form NTK and the hyperkernel (``Hypernetwork``)
linear_nets         f = vᵀUx and f = ⟨u⊙u − v⊙v, x⟩ with closed-form sharpness (``TwoLayerLinear``, ``DiagonalLinear``)
linear_transformer  linear attention Z ← Z + (1/N)(Z Q̃ Zᵀ)M(Z P̃ᵀ), the in-context GD construction (``LinearTransformer``)
linear_ae           autoencoder x → D W_L⋯W_1 E x with a deep linear bottleneck, orthogonal init (``LinearBottleneckAE``)
==================  ===============================================
"""

from .mlp import ACTIVATIONS, MLP
from .ntk import NTKLinear, NTKMLP, NTKRNN

__all__ = ["ACTIVATIONS", "MLP", "NTKLinear", "NTKMLP", "NTKRNN"]

from .attention import SoftmaxAttention, attention_entropy, entropy_lower_bound, head_entropy
from .sigma_reparam import SigmaReparam, effective_weight, sigma_reparam

__all__ += ["SoftmaxAttention", "attention_entropy", "entropy_lower_bound", "head_entropy",
            "SigmaReparam", "effective_weight", "sigma_reparam"]

from .two_layer import TwoLayer, TwoLayerRun, train_sgd
from .representation import (NeuronCollapse, active_units, explained_variance, feature_rank, neuron_collapse,
                             ridge_path)

__all__ += ["TwoLayer", "TwoLayerRun", "train_sgd", "NeuronCollapse", "active_units", "explained_variance",
            "feature_rank", "neuron_collapse", "ridge_path"]

from .prefix_attention import PrefixAttention, attend

__all__ += ["PrefixAttention", "attend"]

from .patch_cnn import PatchCNN, smoothed_leaky_relu
from .resnet import ResNet18

__all__ += ["PatchCNN", "smoothed_leaky_relu", "ResNet18"]

from .transformer import DecoderTransformer, KVCache, TransformerConfig, addition_construction, greedy_decode

__all__ += ["DecoderTransformer", "KVCache", "TransformerConfig", "addition_construction", "greedy_decode"]

from .ensemble import CollegialEnsemble
from .hypernet import Hypernetwork, hyperkernel

__all__ += ["CollegialEnsemble", "Hypernetwork", "hyperkernel"]

from .linear_nets import (DiagonalLinear, TwoLayerLinear, half_mse, log_cosh, two_layer_gd_map,
                          two_layer_sharpness)

__all__ += ["DiagonalLinear", "TwoLayerLinear", "half_mse", "log_cosh", "two_layer_gd_map", "two_layer_sharpness"]

from .linear_transformer import LinearTransformer, linear_attention

__all__ += ["LinearTransformer", "linear_attention"]

from .linear_ae import LinearBottleneckAE

__all__ += ["LinearBottleneckAE"]
