"""`plot_sps`: the paper's and the centred SPS over hidden-state index x position, with the choice marked."""

from __future__ import annotations

from pathlib import Path

from .record import Calibration
from .sps import SPS_RULES, VARIANTS

__all__ = ["plot_sps"]


def plot_sps(cal: Calibration, path: str | Path) -> Path:
    """Save a PNG: side by side, a heatmap of each SPS that can choose (the paper's and the centred;
    rows: hidden-state index 0..N, columns: the positions), the applied layer band outlined on the
    one that chose and each heatmap's own best position marked; right, the band-averaged SPS variants
    per position (upper half, solid; best band, dashed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    rules = [rule for rule in SPS_RULES if rule in cal.sps]
    n_rows, n_cols = cal.num_layers + 1, len(cal.positions)
    fig, axes = plt.subplots(
        1, len(rules) + 1, figsize=(5.5 * len(rules) + 5, max(4.0, 0.18 * n_rows + 1.5)),
        gridspec_kw={"width_ratios": [1.2] * len(rules) + [1]},
    )
    labels = [str(p) for p in cal.positions]
    if len(cal.position_tokens) == n_cols:
        labels = [f"{p}\n{t!s:.10}" for p, t in zip(cal.positions, cal.position_tokens)]
    band = sorted(cal.layers)
    for heat_ax, rule in zip(axes, rules):
        image = heat_ax.imshow(cal.sps[rule], aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=heat_ax, label=f"{rule} SPS")
        heat_ax.set_xticks(range(n_cols))
        heat_ax.set_xticklabels(labels, fontsize=7)
        heat_ax.set_xlabel("position from the prompt end (token of an example prompt)")
        heat_ax.set_ylabel("hidden-state index (0 = embeddings)")
        best = cal.position_by_sps.get(rule, cal.position if rule == cal.sps_rule else None)
        if rule == cal.sps_rule:
            col = cal.positions.index(cal.position)
            heat_ax.add_patch(Rectangle((col - 0.5, band[0] - 0.5), 1, band[-1] - band[0] + 1, fill=False,
                                        edgecolor="red", linewidth=2.0))
            if cal.best_band_layers and cal.best_band_layers != band:
                low, high = cal.best_band_layers[0], cal.best_band_layers[-1]
                heat_ax.add_patch(Rectangle((col - 0.45, low - 0.5), 0.9, high - low + 1, fill=False,
                                            edgecolor="white", linestyle="--"))
            title = f"{rule} SPS (chose): position {cal.position}, layers {band[0]}..{band[-1]} ({cal.layers_rule})"
        else:
            title = f"{rule} SPS: best position {best}" if best is not None else f"{rule} SPS"
        heat_ax.set_title(title, fontsize=9)

    line_ax = axes[-1]
    xs = range(n_cols)
    for variant, color in zip((v for v in VARIANTS if v in cal.band_sps), ("C0", "C1", "C2", "C3")):
        line_ax.plot(xs, cal.band_sps[variant], marker="o", color=color, label=f"{variant} (upper half)")
        if cal.best_band_layers != cal.upper_half_layers and variant in cal.best_band_sps:
            line_ax.plot(xs, cal.best_band_sps[variant], linestyle="--", color=color, alpha=0.7, label=f"{variant} (best band)")
    line_ax.axvline(cal.positions.index(cal.position), color="red", linewidth=1)
    line_ax.set_xticks(list(xs))
    line_ax.set_xticklabels([str(p) for p in cal.positions])
    line_ax.set_xlabel("position")
    line_ax.set_ylabel("band-averaged score")
    line_ax.legend(fontsize=7)
    name = cal.model_name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] + (f" ({cal.gguf_file})" if cal.gguf_file else "")
    fig.suptitle(f"SPS of {name:.80}: {cal.n_questions} questions x {cal.paraphrases_per_question} paraphrases", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
