"""Where katadocker keeps its state on disk, and the locks that make concurrent commands safe."""
