"""The lab's shared vocabulary, the lowest floor: every other package may import it, it imports none of them.

- `errors`: the error family and its exit codes;
- `scenario`: the scenario model, its validation and the built-in library (`scenarios/`);
- `schema`: the columns of a run's `metrics.csv`, the one SLO rule and the default SLO;
- `runfolder`: the files of a run and of a dataset, atomic writes, `run.json`, and the readers.

The contract these modules implement is written down in `docs/contract.md`.
"""
