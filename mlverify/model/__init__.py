"""The ML-CSC model: dictionaries, measures, constructions and the planted-instance sampler."""
