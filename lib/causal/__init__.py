"""Causal estimation over user representations: EconML estimators, diagnostics, uplift, policy."""
