"""The case as FHIR R4 for the county's record system: a transaction Bundle built and
validated with ``fhir.resources`` (``bundle.py``), delivered by ``client.py``."""
