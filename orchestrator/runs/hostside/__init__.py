"""Programs the controller ships to a host inline (read as text, never imported here)."""
