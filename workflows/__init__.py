"""Workflows that combine the packages below: the top floor under the CLI.

- `matrix`: a dataset's run matrix (`generate-dataset`), resumable;
- `quickstart`: record a small dataset, train, evaluate, report;
- `autoscale`: closed-loop scaling inside a lab run (a per-row callback of the harness);
- `compare`: the same scenario with no, reactive and predictive scaling;
- `monitoring`: the live monitor's wiring (target view, model, policy, sinks, exporter).
"""
