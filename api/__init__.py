"""The workflow REST API and the web console."""
