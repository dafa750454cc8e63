"""The book's figure style and the figure kinds that recur across chapters.

Importing this module applies the style (light grid, readable sizes, a colour per method that is
the same in every chapter). Every helper takes an ``ax`` and labels it; a chapter composes them::

    fig, ax = plot.subplots()
    plot.curves(ax, {"Sim-GDA": d_sim, "Alt-GDA": d_alt}, logy=True,
                xlabel="iteration t", ylabel="‖z_t‖² (squared distance to the saddle)")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["STYLE", "apply_style", "color", "subplots", "curves", "hlines", "shade", "heatmap", "bars", "explorer"]

# One colour per recurring name, so "Alt-GDA" or "SGD" looks the same everywhere in the book.
_NAMED = {
    "sim": "#d62728", "sim-gda": "#d62728",
    "alt": "#1f77b4", "alt-gda": "#1f77b4",
    "alex": "#2ca02c", "alex-gda": "#2ca02c",
    "gd": "#7f7f7f", "sgd": "#1f77b4", "adam": "#ff7f0e", "momentum": "#9467bd",
    "theory": "#000000", "prediction": "#000000",
}
_CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=_CYCLE),
    "legend.frameon": False,
    "legend.fontsize": 9.5,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}


def apply_style() -> None:
    """Apply the book's matplotlib style (done on import)."""
    mpl.rcParams.update(STYLE)


apply_style()


def color(name: str, index: int = 0) -> str:
    """The book's colour for a method name (case-insensitive), or the index-th colour of the cycle."""
    return _NAMED.get(name.lower(), _CYCLE[index % len(_CYCLE)])


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None, height: float | None = None,
             **kwargs: Any) -> tuple[plt.Figure, Any]:
    """``plt.subplots`` with a size that grows with the number of panels."""
    w = width if width is not None else min(3.6 * ncols + 1.0, 12.0)
    h = height if height is not None else 3.3 * nrows + 0.3
    return plt.subplots(nrows, ncols, figsize=(w, h), **kwargs)


def curves(
    ax: plt.Axes,
    ys: Mapping[str, Sequence[float] | np.ndarray],
    *,
    x: Mapping[str, Sequence[float] | np.ndarray] | Sequence[float] | np.ndarray | None = None,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    legend: bool = True,
) -> plt.Axes:
    """One line per named series; labels are required so no figure leaves them out.

    Args:
        ys: name → values.
        x: shared x values, a name → x mapping, or None for 0, 1, 2, ...
        styles: name → extra ``ax.plot`` keywords (e.g. ``{"theory": {"ls": "--"}}``).
    """
    for i, (name, y) in enumerate(ys.items()):
        y = np.asarray(y, dtype=float)
        xs = x.get(name) if isinstance(x, Mapping) else x
        xs = np.arange(len(y)) if xs is None else np.asarray(xs, dtype=float)
        kw = {"color": color(name, i), "label": name}
        kw.update((styles or {}).get(name, {}))
        ax.plot(xs, y, **kw)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend and ys:
        ax.legend()
    return ax


def hlines(ax: plt.Axes, values: Mapping[str, float], *, style: str = "--", alpha: float = 0.8) -> None:
    """Labelled horizontal reference lines (e.g. ``{"2/η": 2 / lr}``)."""
    for i, (name, v) in enumerate(values.items()):
        ax.axhline(v, ls=style, color=color(name, i + 3), alpha=alpha, lw=1.2, label=name)
    ax.legend()


def shade(ax: plt.Axes, lo: float, hi: float, *, label: str, color_: str = "#999999") -> None:
    """Shade an x-range, e.g. the trained lengths in a length-generalization plot."""
    ax.axvspan(lo, hi, color=color_, alpha=0.15, lw=0, label=label)


def heatmap(ax: plt.Axes, values: np.ndarray, *, xticks: Sequence[Any], yticks: Sequence[Any], xlabel: str,
            ylabel: str, cbar_label: str, vmin: float | None = None, vmax: float | None = None,
            annotate: bool = True, fmt: str = "{:.2f}") -> plt.Axes:
    """A labelled heat-map with a colour bar (rows are y, columns are x)."""
    values = np.asarray(values, dtype=float)
    im = ax.imshow(values, origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(xticks)), [str(t) for t in xticks])
    ax.set_yticks(range(len(yticks)), [str(t) for t in yticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    cb = ax.figure.colorbar(im, ax=ax)
    cb.set_label(cbar_label)
    if annotate and values.size <= 200:
        mid = np.nanmean([np.nanmin(values), np.nanmax(values)])
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7.5,
                        color="white" if v < mid else "black")
    return ax


def bars(ax: plt.Axes, values: Mapping[str, float], *, ylabel: str, title: str | None = None,
         errors: Mapping[str, float] | None = None, fmt: str = "{:.3g}") -> plt.Axes:
    """Labelled bars with the value written above each."""
    names = list(values)
    heights = [float(values[n]) for n in names]
    err = [float(errors[n]) for n in names] if errors else None
    ax.bar(names, heights, yerr=err, color=[color(n, i) for i, n in enumerate(names)], capsize=3)
    for i, h in enumerate(heights):
        ax.annotate(fmt.format(h), (i, h), ha="center", va="bottom", fontsize=8.5, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def explorer(draw: Any, /, **controls: Any) -> None:
    """An interactive figure: sliders (ipywidgets) over ``draw``'s keyword arguments.

    ``draw(**values)`` must return a matplotlib Figure. The figure for the controls' default
    values is displayed as an ordinary output, so the rendered book and a headless run show it;
    in Jupyter or Colab, moving a control redraws that same output in place.

    Args:
        draw: function of the controls' values returning a Figure.
        controls: name → an ipywidgets value widget (``FloatSlider``, ``IntSlider``, ``Dropdown``...).
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("explorer() needs at least one control, e.g. lr=widgets.FloatSlider(...)")
    for name, w in controls.items():
        if not hasattr(w, "value"):
            raise TypeError(f"control {name!r} is a {type(w).__name__}, not an ipywidgets value widget")
        if not w.description:
            w.description = name
        w.style = {"description_width": "initial"}
        w.continuous_update = False

    def current() -> dict[str, Any]:
        return {k: w.value for k, w in controls.items()}

    fig = draw(**current())
    handle = display(fig, display_id=True)
    plt.close(fig)

    def update(_: Any) -> None:
        new = draw(**current())
        handle.update(new)
        plt.close(new)

    for w in controls.values():
        w.observe(update, names="value")
    box = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    display(box)
