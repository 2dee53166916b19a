"""Floe's kernel: the change batch, errors, the pipeline configuration and secret masking.

Every other package may import it; it imports nothing else of Floe.
"""
