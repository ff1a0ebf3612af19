"""Analyses of an index: its series (changes, volatility, smoothing, gaps, seasons), revision over
vintages, and accuracy (cross-validation, in-sample, forecast)."""
