"""Serving: one model shared by every visitor. `settings` (configuration from the environment, in one place),
`runtime` (start-up and the process-wide service and dataset), `service` (`ZeroShot`: every model call and
every cache of what the model makes), `scheduler` (the gate: one call at a time, interactive first, admission
by expected wait), `accel` (the compute paths and the model tasks ZeroGPU schedules), `backends` (image
encoders and their parity check), `features` (the CIFAR-100 feature store), `cpus` (threads from the CPU
quota) and `janitor` (temporary folders bounded by age). This layer owns every lock, cache and thread.
"""
