"""Data: synthetic generators with known answers, and small real data sets.

=============  =================================================================
games          quadratic and bilinear minimax games with their exact update matrices
real           sklearn digits (ci), MNIST/CIFAR (full scale only)
=============  =================================================================
"""

from .games import QuadraticGame, bilinear_game, count_iterations, iterations_to, quadratic_game
from .real import Split, digits, torchvision_dataset

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
