"""A run's documents, below everything that moves or judges them: what a host writes,
checked against docs/CONTRACT.md (hostdocs), and the controller's own records of a run
(records: run.yaml, local.json); and bootstrap's host layout and planned steps (bootsteps),
which provision plans and the job backends run.  Imports only config, errors, transport.shell
and remote's stdlib modules."""
