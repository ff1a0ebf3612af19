"""Reading and writing: pair and sale-record files (pyarrow, libcudf, DuckDB), period columns, stored
cell tables."""
