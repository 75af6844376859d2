"""Causal graphs of the benchmarks: nodes with roles, directed edges, adjustment sets, drawing.

Drawn with matplotlib only (no graphviz), so the figure renders on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ROLES = ("history", "confounder", "effect_modifier", "treatment", "selection", "outcome")
_COLUMN = {"history": 0, "confounder": 1, "effect_modifier": 1, "treatment": 2, "selection": 2, "outcome": 3}
_COLOUR = {"history": "#d9d9d9", "confounder": "#fdb462", "effect_modifier": "#b3de69", "treatment": "#80b1d3",
           "selection": "#fb8072", "outcome": "#bebada"}


@dataclass
class CausalGraph:
    """A DAG with a role per node.

    Examples
    --------
    >>> g = CausalGraph(roles={"H": "history", "W": "confounder", "T": "treatment", "Y": "outcome"},
    ...                 edges=[("H", "W"), ("W", "T"), ("W", "Y"), ("T", "Y")])
    >>> g.adjustment_set()
    ['W']
    """

    roles: dict[str, str]
    edges: list[tuple[str, str]]
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node, role in self.roles.items():
            if role not in ROLES:
                raise ValueError(f"node {node!r} has unknown role {role!r}; roles: {ROLES}")
        for src, dst in self.edges:
            if src not in self.roles or dst not in self.roles:
                raise ValueError(f"edge ({src!r}, {dst!r}) uses a node without a role")
        if len(self.of_role("treatment")) != 1 or len(self.of_role("outcome")) != 1:
            raise ValueError("a benchmark graph has exactly one treatment and one outcome node")

    @property
    def nodes(self) -> list[str]:
        return list(self.roles)

    def of_role(self, role: str) -> list[str]:
        return [n for n, r in self.roles.items() if r == role]

    def parents(self, node: str) -> list[str]:
        return [s for s, d in self.edges if d == node]

    def adjustment_set(self) -> list[str]:
        """Observed parents of the treatment and of selection nodes, the treatment itself excluded.

        With every node observed this blocks each back-door path into the treatment, and the
        paths opened by conditioning on selection (Hillstrom subsample), so it is a valid
        adjustment set for the effect of the treatment on the outcome.
        """
        treatment = self.of_role("treatment")[0]
        targets = [treatment, *self.of_role("selection")]
        found = {p for t in targets for p in self.parents(t)} - {treatment}
        return [n for n in self.nodes if n in found]

    def to_frame(self) -> pd.DataFrame:
        """Edges with the roles of their ends (the data behind the figure)."""
        return pd.DataFrame([{"source": s, "target": d, "source_role": self.roles[s], "target_role": self.roles[d],
                              "source_label": self.labels.get(s, s), "target_label": self.labels.get(d, d)}
                             for s, d in self.edges])

    def positions(self) -> dict[str, tuple[float, float]]:
        """Left-to-right layout by role: history, covariates, treatment / selection, outcome."""
        columns: dict[int, list[str]] = {}
        for node in self.nodes:
            columns.setdefault(_COLUMN[self.roles[node]], []).append(node)
        pos = {}
        for x, members in columns.items():
            for k, node in enumerate(members):
                pos[node] = (float(x), (len(members) - 1) / 2.0 - k)
        # treatment above and selection below the outcome's row, so edges into the outcome stay clear of them
        for node in self.of_role("treatment"):
            pos[node] = (pos[node][0], 1.0)
        for node in self.of_role("selection"):
            pos[node] = (pos[node][0], -1.0)
        for node in self.of_role("outcome"):
            pos[node] = (pos[node][0], 0.0)
        return pos

    def draw(self, ax) -> None:
        """Draw the graph on a matplotlib axis (nodes coloured by role)."""
        pos = self.positions()
        for src, dst in self.edges:
            ax.annotate("", xy=pos[dst], xytext=pos[src],
                        arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.2, shrinkA=22, shrinkB=22,
                                        connectionstyle="arc3,rad=0.08"))
        for node, (x, y) in pos.items():
            ax.text(x, y, self.labels.get(node, node), ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.4", fc=_COLOUR[self.roles[node]], ec="#333333"))
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
        ax.axis("off")


def graph_from_frame(df: pd.DataFrame) -> CausalGraph:
    """Rebuild a graph from :meth:`CausalGraph.to_frame` (used by the figure's plot function)."""
    roles, labels = {}, {}
    for _, r in df.iterrows():
        roles[r["source"]], roles[r["target"]] = r["source_role"], r["target_role"]
        labels[r["source"]], labels[r["target"]] = r["source_label"], r["target_label"]
    return CausalGraph(roles=roles, edges=list(zip(df["source"], df["target"])), labels=labels)
