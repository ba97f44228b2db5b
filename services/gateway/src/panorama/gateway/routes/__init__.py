"""The gateway's public routes, one router per resource."""
