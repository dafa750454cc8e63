"""Data: synthetic generators with known answers, and small real data sets.

=============  =================================================================
games          quadratic and bilinear minimax games with their exact update matrices; finite-sum games
groups         two groups with known moments (the fair streaming PCA stream)
modular        modular arithmetic tables a ∘ b mod p split into train/test (grokking, Slingshot)
text           characters of Python's own standard library sources (a corpus without download)
planted        a planted low-rank attention teacher (gradual rank increase)
real           sklearn digits (ci), MNIST/CIFAR (full scale only)
teachers       single-index teachers (spiked inputs), two-layer teacher networks, the sphere
patches        the feature-noise patch model of Cutout/CutMix theory (common, rare, extremely rare features)
augment        Cutout and CutMix as batch transforms (patches and images), CIFAR crop-and-flip
streams        data arriving in chunks (``ChunkedStream``), Gaussian class data, a data set as tensors
pruning        dataset pruning: DUAL / EL2N / forgetting scores, DUAL's Beta sampler, training dynamics
arithmetic     addition formats, coupled / multi-level position ids, batches, exact match by length
sparse         sparse linear regression, y = Xw* with an s-sparse teacher (linear diagonal networks)
icl            in-context linear regression prompts (Gaussian / heavy-tailed covariates), GD and LS predictors
latent         x = A z + noise with a planted latent rank (greedy-rank autoencoders)
=============  =================================================================
"""

from .games import QuadraticGame, bilinear_game, count_iterations, iterations_to, quadratic_game
from .real import Split, digits, torchvision_dataset
from .games import FiniteSumGame, finite_sum_game
from .groups import TwoGroupGaussian, two_group_gaussian
from .modular import ModularSplit, modular_arithmetic, modular_table
from .text import python_source, text_windows
from .planted import PlantedAttention, planted_attention

__all__ = [
    "QuadraticGame",
    "Split",
    "bilinear_game",
    "count_iterations",
    "digits",
    "iterations_to",
    "quadratic_game",
    "torchvision_dataset",
]
__all__ += ["FiniteSumGame", "finite_sum_game", "TwoGroupGaussian", "two_group_gaussian"]
__all__ += ["ModularSplit", "modular_arithmetic", "modular_table", "python_source", "text_windows",
            "PlantedAttention", "planted_attention"]

from .teachers import SingleIndex, gaussian_inputs, single_index, sphere, teacher_network

__all__ += ["SingleIndex", "gaussian_inputs", "single_index", "sphere", "teacher_network"]

from . import augment, pruning
from .patches import PatchData, feature_noise_patches
from .streams import ChunkedStream, dataset_tensors, gaussian_classes

__all__ += ["augment", "pruning", "PatchData", "feature_noise_patches", "ChunkedStream", "dataset_tensors",
            "gaussian_classes"]

from . import arithmetic

__all__ += ["arithmetic"]

from .sparse import SparseRegression, sparse_regression

__all__ += ["SparseRegression", "sparse_regression"]

from . import icl
from .icl import icl_regression

__all__ += ["icl", "icl_regression"]

from .latent import LatentSubspace, latent_subspace

__all__ += ["LatentSubspace", "latent_subspace"]
