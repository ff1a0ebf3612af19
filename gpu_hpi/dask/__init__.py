"""Scaling out on Dask: the cluster, a cell table per partition, passes over pairs kept on workers."""
