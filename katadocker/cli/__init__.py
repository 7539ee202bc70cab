"""The command line: parsing and rendering only. Engine work happens in katadocker.engine."""
