"""clipdemo: OpenAI CLIP zero-shot image classification, as a library, a CLI and a Gradio Space.

Modules: `presets` (label and template sets), `prompts` (validation), `weights` (sources, downloads),
`model` (loading), `engine` (the math), `service` (model + caches), `data` (CIFAR-100), `images`
(safe decoding), `cli`, and `ui` (the only module that imports gradio). Importing the package loads
nothing and touches no network or disk.
"""

__version__ = "0.1.0"
