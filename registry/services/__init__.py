"""Domain services: business rules over repositories. Services never commit."""
