"""Console scripts. Only these modules touch Hydra's global state."""
