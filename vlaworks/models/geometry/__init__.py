"""Geometry teachers for PokeVLA's geometry alignment (seed 001, section V-C): frozen image
-> per-patch geometry feature models, used during training only (:mod:`.teacher`)."""
