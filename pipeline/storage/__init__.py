"""The I/O layer: params, files, the Hugging Face hub, the model directory, the feature store,
checkpoints and plots. It may use the core; the core never uses it."""
