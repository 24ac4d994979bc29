"""The hostile-input campaign's parts: ``core`` runs and classifies cases; each other module
makes the cases of one or two boundaries (``benchmarks/hostile_inputs.py`` runs them)."""
