"""The per-container monitor process: ``python -m katadocker.monitor`` (see __main__.py for how it
starts and reaches its container, core.py for what it does with it, ops.py for exec, resize, pause).

One detached process per running container (podman's conmon, kata's shim).
"""
