"""Tooling of the book itself (not needed by chapters): the Sphinx extension, the clean-notebook
converter, the seed sweeps, the generated appendix pages."""
