"""The model server: dynamic batcher, OIP v2 HTTP app, the naive Flask baseline, server processes."""
