"""The node: the LevelDB store (event log, headers, snapshots), the chain service that keeps the
store and the state in step, the CLI and the development tools. It wires every other package.
"""
