"""The test suite of errauto."""
