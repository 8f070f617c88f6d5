"""A run's documents, below everything that moves or judges them: what a host writes,
checked against docs/CONTRACT.md (hostdocs), and the controller's own records of a run
(records: run.yaml, local.json).  Imports only config, errors and remote's stdlib modules."""
