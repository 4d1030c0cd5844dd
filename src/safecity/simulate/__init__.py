"""Simulated field devices that speak the real protocols over real sockets.

`panels` drives any number of DC-09 alarm panels against a receiver, for demos, crash tests and the
alarm benchmark; `cli` exposes it as `safecity simulate panels`.
"""
