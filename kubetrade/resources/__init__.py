"""Pydantic models of the custom resources; crds/*.yaml are generated from them."""
