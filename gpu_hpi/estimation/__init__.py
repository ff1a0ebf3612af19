"""Estimation: solving the repeat-sales regression (host LAPACK for the exact solve, LSQR / LSMR
on the dummy-matrix operator)."""
