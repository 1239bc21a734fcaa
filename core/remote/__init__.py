"""Runs owned by another process: the control channel, the journal follower, detached owners.

A run's owner (the app, a headless or a detached process) serves a Unix socket in the run
directory; any number of front ends attach to it, take a snapshot of the run, follow the journal
from the snapshot's offset, and steer the run through the socket.
"""
