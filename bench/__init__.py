"""Speed, memory and load figures, run as modules from the repository root: `python -m bench.run`
(`make bench`), `python -m bench.load`, `python -m bench.gpu_check` (on a lent GPU). Not part of `make test`."""
