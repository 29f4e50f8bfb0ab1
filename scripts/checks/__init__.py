"""The checks library: probes, load and resource measurements against twinlab targets.

Fabric tasks (fabfile.py) and pytest call this package; neither parses text output.
"""
