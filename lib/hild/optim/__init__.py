"""Optimizers and samplers the papers study, as torch optimizers (and array versions where a
chapter needs the exact, closed-form iteration).

=====================  ===========================================================
gda                    Sim-GDA, Alt-GDA, Alex-GDA for min-max games
seg                    stochastic extragradient: uniform / reshuffled / flip-flop orders, anchoring
streaming_pca          noisy power method, fair noisy power method (FNPM), fair PCA metrics
sgmcmc                 SGLD, SGHMC, the parameter-expanded linear layer (PX-SGMCMC)
sam                    sharpness-aware minimisation around any optimizer (``SAM``)
att_svm                the Att-SVM / W-SVM of max-margin token selection, solved exactly (``solve_att_svm``)
normalized_gd          normalised gradient descent, θ ← θ − lr·g/‖g‖ (``NormalizedGD``)
momentum               heavy ball vs SGD at equal effective rate; noisy-quadratic closed forms; ``train_arms``
dash                   DASH (direction-aware shrinking) and shrink-and-perturb for warm starts
polyak                 Polyak's heavy ball as w ← w − η_t∇L + β(w − w_prev), linear warm-up, catapult sizes
projected              Dom-/Bulk-SGD: steps projected onto / out of the top Hessian eigenspace (``ProjectedSGD``)
noise                  mini-batch gradient noise in one vmapped pass, noise norms, excess kurtosis
=====================  ===========================================================
"""

from .gda import AlexGDA, AltGDA, GDARun, SimGDA, gda_step, run_gda
from .seg import SEG, SEGRun, flip_flop, pass_order, run_seg
from .streaming_pca import fair_noisy_power_method, fair_pca, noisy_power_method, principal_angles
from .sgmcmc import SGHMC, SGLD, ExpandedLinear, expand_linears

__all__ = ["AlexGDA", "AltGDA", "GDARun", "SimGDA", "gda_step", "run_gda"]
__all__ += ["SEG", "SEGRun", "flip_flop", "pass_order", "run_seg", "fair_noisy_power_method", "fair_pca",
            "noisy_power_method", "principal_angles", "SGHMC", "SGLD", "ExpandedLinear",
            "expand_linears"]

from .sam import SAM

__all__ += ["SAM"]

from .att_svm import (SVMSolution, att_svm_constraints, directional_cosine, locally_optimal, max_margin,
                      optimal_tokens, solve_att_svm, token_scores)
from .normalized_gd import NormalizedGD
from .momentum import (effective_lr, heavy_ball, heavy_ball_matrix, momentum_warmup, relative_gap,
                       stability_limit, stationary_variance, train_arms)

__all__ += ["SVMSolution", "att_svm_constraints", "directional_cosine", "locally_optimal", "max_margin",
            "optimal_tokens", "solve_att_svm", "token_scores", "NormalizedGD", "effective_lr", "heavy_ball",
            "heavy_ball_matrix", "momentum_warmup", "relative_gap", "stability_limit", "stationary_variance",
            "train_arms"]

from .dash import ShrinkReport, dash_shrink, neuron_cosines, shrink_perturb

__all__ += ["ShrinkReport", "dash_shrink", "neuron_cosines", "shrink_perturb"]

from .polyak import Catapult, PolyakHeavyBall, catapult, linear_warmup

__all__ += ["Catapult", "PolyakHeavyBall", "catapult", "linear_warmup"]

from .projected import ProjectedSGD

__all__ += ["ProjectedSGD"]

from .noise import GradientNoise, excess_kurtosis, gradient_noise, minibatch_gradients

__all__ += ["GradientNoise", "excess_kurtosis", "gradient_noise", "minibatch_gradients"]
