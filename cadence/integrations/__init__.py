"""cadence's techniques from other training loops: ``cadence.integrations.lightning`` (Lightning) and
``cadence.integrations.huggingface`` (the Hugging Face ``Trainer``).

Import the submodule you need; each imports its framework, which is an extra:
``pip install 'cadence[lightning]'`` or ``pip install 'cadence[transformers]'``. Importing this package
loads neither.
"""

__all__: list[str] = []
