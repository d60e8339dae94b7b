"""Multi-task NLP pipeline: sentence topic classification and NER on one shared encoder.

Stages (run by DVC, see dvc.yaml): validate -> tokenize -> train -> evaluate -> predict.
Each stage is a thin module (`python -m pipeline.<stage> --help`) over the pure core:
records (data contract), align (span <-> token tags), model, metrics, inference.
"""
