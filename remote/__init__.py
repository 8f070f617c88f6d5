"""What runs on the GPU host: data, tokenizers, models, training and scoring.

Depends on torch + transformers + tokenizers only (``spec``, ``data`` and ``files`` are
standard library); never imports ``orchestrator``.
"""
