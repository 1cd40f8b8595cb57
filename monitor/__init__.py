"""The krwatch service: CLI, configuration, sources, store, scheduler and HTTP."""
