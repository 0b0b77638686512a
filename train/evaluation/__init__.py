"""Evaluation as a library (DESIGN §7): a protocol, `evaluate(...) -> EvalResult`, and reports.

`mbmrl eval` runs it in-process on an artifact; the quickstart runs it over HTTP.
"""
