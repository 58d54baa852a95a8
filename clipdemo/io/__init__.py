"""Inputs and outputs that are not the model: CIFAR-100 (`cifar`), untrusted images decoded safely and reduced
to what the model keeps (`images`), and every picture the app draws (`figures`). Above the core, below the
service; no gradio, and no threads of its own (one semaphore bounds how many full-size images
are decoded at once across the process: a bound on memory, shared on purpose).
"""
