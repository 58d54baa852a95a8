"""The core: CLIP itself and what a user gives it, as pure functions and frozen data.

`model` (what a CLIP model is: its config from the weights' shapes, its weights' identity, building it from
tensors), `zeroshot` (the zero-shot math and its `Prediction`), `inside` (attention, rollout, relevancy,
tokens), `architecture` (config card, torchinfo), `labels` (`LabelSet`: labels and templates, checked),
`checks` (one checker per input value), `words` (every sentence as a key; `Refusal`, the one error type) and
`clip_package` (the one import of openai-clip). No threads, no caches beyond pure memos, one lock (the one
that makes `import clip` whole), no I/O
beyond reading a label file, no gradio: everything above imports this layer, and it imports none of them.
"""
