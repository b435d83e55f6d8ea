# native-only tests and benchmarks
