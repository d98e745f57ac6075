"""Fakes for tests only: stand-ins for hardware/software CI cannot have (TensorRT). Never used by deploykit."""
