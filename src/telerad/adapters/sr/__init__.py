"""DICOM objects of signed reports: the SR (TID 2000) and the encapsulated PDF."""
