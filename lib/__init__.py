"""behaviour-causal: transformer models of user behaviour for prediction and causal inference.

Sub-packages: ``data`` (ingestion, schemas, splits), ``simulate`` (benchmarks with known
effects), ``models`` / ``train`` (HF transformers trained with Lightning), ``causal``
(EconML estimators and diagnostics), ``sweep`` (papermill sweeps), ``report`` (tables,
figures, metrics.json). ``config`` composes the Hydra tree in ``conf/``; ``runner``
executes the numbered notebooks.
"""
