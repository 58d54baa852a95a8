"""Inputs and outputs that are not the model: CIFAR-100 (`cifar`), untrusted images decoded safely and reduced
to what the model keeps (`images`), and every picture the app draws (`figures`). Above the core, below the
service; no threads, no gradio.
"""
