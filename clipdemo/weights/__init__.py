"""Weights: where a model's weights come from (`sources`: every mirror pinned by SHA-256), how they are
fetched (`download`: the Hugging Face cache, the Hub, plain HTTPS, verified), how files are read (`formats`:
TorchScript, safetensors, torch.save, never running code from them) and the chain from a name to a model
(`load`). Above the core (it builds `clipdemo.core.model`'s types), below everything that serves the model.
"""
