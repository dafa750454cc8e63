"""Optimizers and samplers the papers study, as torch optimizers (and array versions where a
chapter needs the exact, closed-form iteration).

=====================  ===========================================================
gda                    Sim-GDA, Alt-GDA, Alex-GDA for min-max games
=====================  ===========================================================
"""

from .gda import AlexGDA, AltGDA, GDARun, SimGDA, gda_step, run_gda

__all__ = ["AlexGDA", "AltGDA", "GDARun", "SimGDA", "gda_step", "run_gda"]
