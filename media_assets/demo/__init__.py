"""The project's own demo site and a small local HTTP server for demos, tests and benchmarks."""
