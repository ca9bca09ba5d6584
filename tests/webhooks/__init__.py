"""Webhooks: endpoints, the rows a booking change causes, signed delivery to a real receiver."""
