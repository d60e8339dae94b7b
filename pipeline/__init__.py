"""Multi-task NLP pipeline: sentence topic classification and NER on one shared encoder.

Layers, each importing only from the ones above it (tests/test_architecture.py checks it):
  core/     pure computation: records, alignment, features, model, inference, metrics, training
  storage/  everything that touches the outside: params, files, the hub, model directory,
            feature store, checkpoints, plots
  formats/  annotation tools' formats (CoNLL, Label Studio, spaCy), for import and export
  stages/   thin commands: read params, load inputs, call the core, write outputs
One entry point runs any stage: `python -m pipeline STAGE [options]` (pipeline/cli.py).
"""
