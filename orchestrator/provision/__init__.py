"""Taking a host to a verified environment: probe it (probe, gpu), decide the steps (plan,
torch_select, flashattn), run them (bootstrap, steps, hostlock). Prints nothing: progress
goes to a progress.Progress, which `orch bootstrap` renders."""
