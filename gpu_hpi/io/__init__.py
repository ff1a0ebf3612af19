"""Reading and writing: pair and sale-record files (pyarrow, cudf, DuckDB), period columns, stored
cell tables."""
