"""Protection of patient data: encryption at rest, security headers, request limits."""
