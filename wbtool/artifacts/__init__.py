"""Artifacts: building, logging and materialising versioned sets of files."""
