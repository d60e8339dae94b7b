"""The stages, one module each with main(argv=None): read params, load inputs, call the core,
write outputs. No stage imports another (python -m pipeline --help lists them)."""
