"""Benchmarks that run telerad side by side with its peers and print ratios from the same run.

``python -m bench.archive`` (``make bench``) compares telerad with Orthanc and dcmtk's
storescp on ingest (C-STORE, STOW-RS), query (QIDO-RS) and retrieve (WADO-RS).
"""
