"""Annotation tool formats (CoNLL, Label Studio, spaCy), read by the import stage and written by export."""
