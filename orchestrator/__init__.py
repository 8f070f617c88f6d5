"""orch: the controller. Runs on the laptop, never imports torch."""

__version__ = "0.1.0"
