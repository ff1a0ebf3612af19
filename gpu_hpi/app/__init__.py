"""The application behind `python -m gpu_hpi`: the loaders, the pipeline of stages and the report."""
