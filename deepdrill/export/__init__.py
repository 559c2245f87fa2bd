"""Exporters: the stored variants of a build (key.json) and the grader's results, in the
formats learning-management systems import. Each exporter is a thin driver over the same
variants and grader; `deepdrill export ...` runs them."""
