"""Data structures of the regression: the dummy (design) matrix of the pairs."""
