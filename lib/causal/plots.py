"""Figures of the causal study: each function takes the registered DataFrame and returns a Figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LEVEL_ORDER = ["low", "default", "high"]


def bias_vs_confounding(df: pd.DataFrame) -> plt.Figure:
    """|bias| vs confounding level, one line per representation, one panel per estimator (summary rows)."""
    ests = list(dict.fromkeys(df["estimator"]))
    fig, axes = plt.subplots(1, len(ests), figsize=(3.2 * len(ests), 3), sharey=True, squeeze=False)
    for ax, est in zip(axes[0], ests):
        sub = df[df["estimator"] == est]
        for rep, g in sub.groupby("representation", sort=False):
            g = g.set_index("level").reindex([lv for lv in LEVEL_ORDER if lv in set(g["level"])])
            ax.plot(g.index, g["abs_bias"], marker="o", label=rep)
        ax.set_title(est)
        ax.set_xlabel("confounding")
    axes[0][0].set_ylabel("|bias| of ATE")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def coverage(df: pd.DataFrame) -> plt.Figure:
    """95% CI coverage over seeds per representation x estimator (summary rows), nominal line at 0.95."""
    d = df.dropna(subset=["coverage"])
    labels = [f"{r}\n{e}" for r, e in zip(d["representation"], d["estimator"])]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(d)), 3))
    ax.bar(range(len(d)), d["coverage"], color="#80b1d3")
    ax.axhline(0.95, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(d)), labels, rotation=90, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("CI coverage")
    fig.tight_layout()
    return fig


def cate_scatter(df: pd.DataFrame) -> plt.Figure:
    """Estimated vs true CATE per representation (rows) and estimator (columns)."""
    reps, ests = list(dict.fromkeys(df["representation"])), list(dict.fromkeys(df["estimator"]))
    fig, axes = plt.subplots(len(reps), len(ests), figsize=(2.4 * len(ests), 2.4 * len(reps)), squeeze=False,
                             sharex=True, sharey=True)
    lo, hi = float(df[["tau", "cate"]].min().min()), float(df[["tau", "cate"]].max().max())
    for i, rep in enumerate(reps):
        for j, est in enumerate(ests):
            ax = axes[i][j]
            g = df[(df["representation"] == rep) & (df["estimator"] == est)]
            ax.scatter(g["tau"], g["cate"], s=4, alpha=0.5)
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"{rep} / {est}", fontsize=7)
    fig.supxlabel("true effect")
    fig.supylabel("estimated CATE")
    fig.tight_layout()
    return fig


def overlap_histograms(df: pd.DataFrame) -> plt.Figure:
    """Cross-fitted propensity histograms of treated vs control units per representation (and arm)."""
    keys = list(dict.fromkeys(zip(df["representation"], df["arm"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6), squeeze=False, sharey=True)
    for ax, (rep, arm) in zip(axes[0], keys):
        g = df[(df["representation"] == rep) & (df["arm"] == arm)]
        for treated, c in ((True, "#fb8072"), (False, "#80b1d3")):
            h = g[g["treated"] == treated]
            ax.bar(h["bin_left"], h["count"], width=h["bin_right"] - h["bin_left"], align="edge", alpha=0.6,
                   color=c, label="treated" if treated else "control")
        for b in (0.05, 0.95):
            ax.axvline(b, color="k", ls=":", lw=0.8)
        ax.set_title(f"{rep} (arm {arm})", fontsize=8)
        ax.set_xlabel("propensity")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def rct_gap(df: pd.DataFrame) -> plt.Figure:
    """Estimates (95% CI) on the confounded subsample vs the full-RCT ATE (band), per outcome and arm."""
    keys = list(dict.fromkeys(zip(df["outcome"], df["arm_name"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.4), squeeze=False)
    for ax, (outcome, arm) in zip(axes[0], keys):
        g = df[(df["outcome"] == outcome) & (df["arm_name"] == arm)].groupby(["representation", "estimator"], sort=False)
        g = g[["ate", "ci_low", "ci_high", "rct_ate", "rct_ci_low", "rct_ci_high"]].mean().reset_index()
        y = np.arange(len(g))
        ax.axvspan(g["rct_ci_low"].iloc[0], g["rct_ci_high"].iloc[0], color="#b3de69", alpha=0.5, label="RCT 95% CI")
        ax.errorbar(g["ate"], y, xerr=[g["ate"] - g["ci_low"], g["ci_high"] - g["ate"]], fmt="o", ms=3)
        ax.set_yticks(y, [f"{r} / {e}" for r, e in zip(g["representation"], g["estimator"])], fontsize=6)
        ax.set_title(f"{outcome}, {arm}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def qini_curves(df: pd.DataFrame) -> plt.Figure:
    """Qini curves per model, one panel per (outcome, arm), over the band of random targeting.

    Rows of model ``random`` carry the permutation null: its mean curve (dotted) and, when the
    columns ``qini_low`` / ``qini_high`` are present, the band between them (shaded).
    """
    keys = list(dict.fromkeys(zip(df["outcome"], df["arm"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
    for ax, (outcome, arm) in zip(axes[0], keys):
        for model, g in df[(df["outcome"] == outcome) & (df["arm"] == arm)].groupby("model", sort=False):
            if model == "random" and "qini_low" in g:
                ax.fill_between(g["share_targeted"], g["qini_low"], g["qini_high"], color="0.8",
                                label="random (null band)")
            ax.plot(g["share_targeted"], g["qini"], label=model, ls=":" if model == "random" else "-",
                    color="k" if model == "random" else None)
        name = df.loc[(df["outcome"] == outcome) & (df["arm"] == arm), "arm_name"].iloc[0] if "arm_name" in df else ""
        ax.set_title(f"{outcome}, arm {arm} {name}".rstrip(), fontsize=8)
        ax.set_xlabel("share targeted")
    axes[0][0].set_ylabel("Qini (incremental responders)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def policy_tree(df: pd.DataFrame) -> plt.Figure:
    """Draw a policy tree from its node table (lib.causal.policy.tree_frame)."""
    nodes = df.set_index("node")
    depth = int(nodes["depth"].max())
    fig, ax = plt.subplots(figsize=(2.6 * 2 ** depth, 1.6 * (depth + 1)))
    pos: dict[int, tuple[float, float]] = {}

    def place(node: int, x0: float, x1: float) -> None:
        pos[node] = ((x0 + x1) / 2, -nodes.loc[node, "depth"])
        kids = nodes[nodes["parent"] == node]
        for side, (a, b) in (("yes", (x0, (x0 + x1) / 2)), ("no", ((x0 + x1) / 2, x1))):
            k = kids[kids["side"] == side]
            if len(k):
                place(int(k.index[0]), a, b)

    place(0, 0.0, 1.0)
    for node, r in nodes.iterrows():
        x, y = pos[node]
        if r["parent"] >= 0:
            px, py = pos[int(r["parent"])]
            ax.plot([px, x], [py, y], "k-", lw=0.8)
            ax.text((px + x) / 2, (py + y) / 2, "yes" if r["side"] == "yes" else "no", fontsize=7, ha="center")
        text = f"treat: {r['action']}\nn={r['n']}" if r["leaf"] else f"{r['feature']} <= {r['threshold']:.2f}\nn={r['n']}"
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#b3de69" if r["leaf"] else "#d9d9d9"))
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-depth - 0.5, 0.5)
    ax.axis("off")
    return fig


def effect_modifier_importance(df: pd.DataFrame) -> plt.Figure:
    """Mean |SHAP| of the CATE per effect modifier, one panel per arm."""
    arms = list(dict.fromkeys(df["arm"]))
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        g = df[df["arm"] == arm].sort_values("importance")
        ax.barh(g["feature"], g["importance"], color="#fdb462")
        ax.set_title(str(arm), fontsize=8)
        ax.set_xlabel("mean |SHAP| of CATE")
    fig.tight_layout()
    return fig
