"""A local emulator of Sendcloud's Orders API v3 (see emulator/README.md).

An independent implementation of the public contract: it imports nothing from `pipeline`.
Entry points: `emulator.cli.main` (the `ordersync emulator` command, `python -m emulator`) and
`emulator.testing` (context managers that run it for tests).
"""
