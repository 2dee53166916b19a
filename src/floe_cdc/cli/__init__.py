"""The ``floe`` command line: parses, calls the flows and the pipeline, prints one line per error."""
