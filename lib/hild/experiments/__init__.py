"""Training recipes that a chapter and a command line share (``python -m hild.experiments.<name>``).

A recipe is a frozen dataclass that holds a whole run (task, model, optimisation, seed) and the
functions that train it, save it with its provenance and load it back. Chapters call them at both
scales; the command line trains the small checkpoints that chapters load where a claim needs more
compute than the ci budget (DESIGN.md, "Scales").

==========  ===============================================================================
arithmetic  decoder-only transformers on (multi-operand) addition with coupled position ids
==========  ===============================================================================
"""
