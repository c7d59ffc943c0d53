"""The command modules `workbench.cli` registers beside its own: what they share (`common`), the
bundle commands (`bundle`: export, serve, verify) and the RPC fleet (`fleet`: up, status, down)."""
