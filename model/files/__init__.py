"""File formats and safe file I/O: the sparse layer file, the network export, JSON reading, atomic writes."""
