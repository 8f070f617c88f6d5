"""A run's life on a host: plan its jobs, launch and resume them (check-and-launch), read
their status, cancel, follow logs, fetch results; code sync, data staging, preview, smoke."""
