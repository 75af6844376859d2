"""Figures of the causal study: each function takes the registered DataFrame and returns a Figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: reader-facing names of representations, estimators and settings
LABELS = {"none": "no adjustment", "oracle": "true confounders", "raw": "raw covariates",
          "sparse_history": "sparse history (bag + last items)", "hand_gbm": "hand features + GBM",
          "bag_svd": "bag-of-items SVD", "seq_pretrained": "SASRec, pretrained",
          "seq_finetuned": "SASRec fine-tuned (cross-fitted)", "text_frozen": "MiniLM, frozen",
          "text_lora": "MiniLM, LoRA", "text_full": "MiniLM, full fine-tune",
          "naive": "difference in means", "ols": "OLS", "linear_dml": "LinearDML",
          "causal_forest_dml": "CausalForestDML", "dr_learner": "DR learner", "causalbert_aipw": "AIPW (Dragonnet heads)",
          "default": "all channels", "order_free": "order-free only", "order_dependent": "recent items only",
          "transition": "transition only", "hidden_modifier": "all + hidden modifier", "low": "all, weak", "high": "all, strong"}


def label(name: str) -> str:
    return LABELS.get(name, name)


def bias_by_setting(df: pd.DataFrame) -> plt.Figure:
    """Mean bias of the ATE (+-1.96 Monte-Carlo SE) per confounding setting; one panel per estimator (summary rows)."""
    ests = list(dict.fromkeys(df["estimator"]))
    settings = list(dict.fromkeys(df["level"]))
    fig, axes = plt.subplots(1, len(ests), figsize=(3.6 * len(ests), 3.4), sharey=True, squeeze=False)
    reps = list(dict.fromkeys(df["representation"]))
    width = 0.8 / max(len(reps), 1)
    for ax, est in zip(axes[0], ests):
        sub = df[df["estimator"] == est]
        for j, rep in enumerate(reps):
            g = sub[sub["representation"] == rep].set_index("level").reindex(settings)
            x = np.arange(len(settings)) + (j - (len(reps) - 1) / 2) * width
            ax.errorbar(x, g["bias"], yerr=1.96 * g["bias_mcse"].fillna(0), fmt="o", ms=3, capsize=2, label=label(rep))
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(settings)), [label(s) for s in settings], rotation=45, ha="right", fontsize=7)
        ax.set_title(label(est), fontsize=9)
    axes[0][0].set_ylabel("bias of the ATE (mean over seeds)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def coverage(df: pd.DataFrame) -> plt.Figure:
    """Coverage of the 95% CI over seeds with its binomial 95% interval, nominal line at 0.95 (summary rows).

    One panel per estimator; hollow markers are cells with fewer seeds than the headline minimum.
    """
    d = df.dropna(subset=["coverage"])
    ests = list(dict.fromkeys(d["estimator"]))
    fig, axes = plt.subplots(1, len(ests), figsize=(3.2 * len(ests), 3.6), sharey=True, squeeze=False)
    for ax, est in zip(axes[0], ests):
        g = d[d["estimator"] == est].reset_index(drop=True)
        y = np.arange(len(g))
        err = [g["coverage"] - g["coverage_ci_low"], g["coverage_ci_high"] - g["coverage"]]
        for headline, fill in ((True, "C0"), (False, "none")):
            m = g["headline"] == headline
            ax.errorbar(g["coverage"][m], y[m], xerr=[err[0][m], err[1][m]], fmt="o", ms=4, capsize=2,
                        mfc=fill, color="C0")
        ax.axvline(0.95, color="k", ls="--", lw=1)
        ax.set_yticks(y, [f"{label(r)} (n={n})" for r, n in zip(g["representation"], g["n_seeds"])], fontsize=7)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(label(est), fontsize=9)
        ax.set_xlabel("CI coverage")
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
            ax.set_title(f"{label(rep)} / {label(est)}", fontsize=7)
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
        ax.set_title(f"{label(rep)} (arm {arm})", fontsize=8)
        ax.set_xlabel("propensity")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def confounder_probes(df: pd.DataFrame) -> plt.Figure:
    """Heat map per data set: out-of-fold R^2 of each true confounder from each representation (probe rows)."""
    datasets = list(dict.fromkeys(df["dataset"]))
    reps, confs = list(dict.fromkeys(df["representation"])), list(dict.fromkeys(df["confounder"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(1.2 * len(confs) * len(datasets) + 2.5, 0.4 * len(reps) + 1.6),
                             squeeze=False, sharey=True)
    for ax, ds in zip(axes[0], datasets):
        m = df[df["dataset"] == ds].pivot(index="representation", columns="confounder", values="r2").reindex(
            index=reps, columns=confs)
        im = ax.imshow(m.clip(lower=0).to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(m.to_numpy(float)):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(confs)), [c.replace("_", " ") for c in confs], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(reps)), [label(r) for r in reps], fontsize=7)
        ax.set_title(str(ds).capitalize(), fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="out-of-fold R² (negative shown as 0)")
    return fig


def rct_gap(df: pd.DataFrame) -> plt.Figure:
    """Mean confounded-subsample estimate (+-1.96 Monte-Carlo SE over seeds) vs the full-RCT ATE (band), per outcome and arm."""
    keys = list(dict.fromkeys(zip(df["outcome"], df["arm_name"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.6), squeeze=False)
    for ax, (outcome, arm) in zip(axes[0], keys):
        g = df[(df["outcome"] == outcome) & (df["arm_name"] == arm)].groupby(["representation", "estimator"], sort=False)
        g = g.agg(ate=("ate", "mean"), sd=("ate", "std"), n=("ate", "size"), rct_ci_low=("rct_ci_low", "first"),
                  rct_ci_high=("rct_ci_high", "first")).reset_index()
        y = np.arange(len(g))
        ax.axvspan(g["rct_ci_low"].iloc[0], g["rct_ci_high"].iloc[0], color="#b3de69", alpha=0.5,
                   label="full-RCT 95% CI")
        ax.errorbar(g["ate"], y, xerr=1.96 * (g["sd"] / np.sqrt(g["n"])).fillna(0), fmt="o", ms=3, capsize=2)
        ax.set_yticks(y, [f"{label(r)} / {label(e)}" for r, e in zip(g["representation"], g["estimator"])], fontsize=6)
        ax.set_title(f"{outcome}, {arm.replace('_', ' ')}", fontsize=8)
        ax.set_xlabel("ATE (mean over subsample seeds)")
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
