"""Tables, figures, ``metrics.json`` and ``RESULTS.md`` rendered from saved run results."""
