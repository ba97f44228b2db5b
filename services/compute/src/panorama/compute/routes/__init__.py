"""The compute service's routes."""
