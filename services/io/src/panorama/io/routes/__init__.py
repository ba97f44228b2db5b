"""The I/O service's routes, one router per resource."""
