"""Continued Model Evaluation: captured predictions joined with ground truth by key, quality tracked over time.

Modules: captures (read the handler's capture files in plain Python; the layout is handler.capture's).
"""
