"""The integer datapath: its configuration and widths, quantization, integer transforms, the bit-accurate reference and its error bound, whole integer networks."""
