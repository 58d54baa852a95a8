"""Tasks: what a user asks of the shared model, written once for every shell (page, API, MCP, CLI, library).
`classify` (one image, a CIFAR-100 test image, a batch; the Hugging Face zero-shot schema), `evaluate`
(accuracy on CIFAR-100's test split: one generator that yields progress and a report) and `selfcheck` (the
published figures the real model must reproduce, and the comparisons). They call the service, never the
model, and check their inputs with `clipdemo.core.checks`.
"""
