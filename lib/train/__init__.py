"""Lightning training of the behaviour models: ``python -m lib.train`` and :func:`lib.train.run.train`."""
