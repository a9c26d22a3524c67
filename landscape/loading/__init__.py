"""Loading: a checkpoint file, an architecture spec and a data spec -> model, data, provenance.

The one loading path of every command and of :func:`landscape.load`:

* :mod:`~landscape.loading.checkpoint` reads a file (``torch.load(weights_only=True)`` unless
  trusted, safetensors, model folders) into a
  :class:`~landscape.loading.checkpoint.LoadedCheckpoint`;
* :mod:`~landscape.loading.architecture` turns ``--arch`` into a module (the registry of
  :mod:`landscape.models`, ``torchvision:``, ``timm:``/``hf:`` through
  :mod:`~landscape.loading.external`, ``file.py:factory``), :mod:`~landscape.loading.model_folder`
  reads timm and Hugging Face folders;
* :mod:`~landscape.loading.state_fit` fits a state dict to the module (prefixes, tied weights,
  mismatch reports);
* :mod:`~landscape.loading.user_data` and :mod:`~landscape.loading.tokens` read ``--data``;
* :mod:`~landscape.loading.loader` puts them together:
  :func:`~landscape.loading.loader.load_models` and :func:`~landscape.loading.loader.load_data`
  give :class:`~landscape.loading.loader.LoadedModel` objects and :class:`landscape.data.Data`,
  with the provenance every result records.

Nothing here is imported by ``landscape --help``: import the submodule you need.
"""
